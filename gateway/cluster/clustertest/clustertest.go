// Package clustertest gives tests the Redis server a cluster runs on: the
// real one at 127.0.0.1:6379 (or MOONGATE_TEST_REDIS), each test under a
// prefix of its own that is cleaned away when it ends.
package clustertest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// URL is the Redis server tests use.
func URL() string {
	if u := os.Getenv("MOONGATE_TEST_REDIS"); u != "" {
		return u
	}
	return "redis://127.0.0.1:6379/0"
}

// Redis returns a client of the test server. When it cannot be reached
// the test is skipped with a message, or fails when CI=true.
func Redis(t testing.TB) *redis.Client {
	t.Helper()
	opts, err := redis.ParseURL(URL())
	if err != nil {
		t.Fatalf("MOONGATE_TEST_REDIS: %v", err)
	}
	rdb := redis.NewClient(opts)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := rdb.Ping(ctx).Err(); err != nil {
		rdb.Close()
		if os.Getenv("CI") == "true" {
			t.Fatalf("Redis at %s unreachable (CI=true): %v", URL(), err)
		}
		t.Skipf("Redis at %s unreachable, skipping (set CI=true to fail instead): %v", URL(), err)
	}
	t.Cleanup(func() { rdb.Close() })
	return rdb
}

// Prefix returns a key prefix no other test uses, and deletes every key
// under it when the test ends.
func Prefix(t testing.TB, rdb *redis.Client) string {
	return Namespace(t, rdb) + ":"
}

// Namespace returns a cluster prefix (config's cluster.prefix) no other
// test uses, and deletes every key under it when the test ends.
func Namespace(t testing.TB, rdb *redis.Client) string {
	t.Helper()
	b := make([]byte, 6)
	rand.Read(b)
	ns := "mgtest-" + hex.EncodeToString(b)
	t.Cleanup(func() { Clean(rdb, ns+":") })
	return ns
}

// Clean deletes every key starting with prefix.
func Clean(rdb *redis.Client, prefix string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	iter := rdb.Scan(ctx, 0, prefix+"*", 1000).Iterator()
	for iter.Next(ctx) {
		rdb.Del(ctx, iter.Val())
	}
}
