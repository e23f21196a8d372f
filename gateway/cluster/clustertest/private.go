package clustertest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Private is a redis-server of a test's own, on a loopback port, keeping
// nothing on disk: restarted, it comes back empty (the worst case of a
// Redis restart).
type Private struct {
	t    testing.TB
	port int
	cmd  *exec.Cmd
	done chan struct{}
}

// StartPrivate starts a redis-server for t alone and stops it when t
// ends. Without the redis-server program the test is skipped, or fails
// under CI=true.
func StartPrivate(t testing.TB) *Private {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("redis-server not found (CI=true): %v", err)
		}
		t.Skipf("redis-server not found, skipping (set CI=true to fail instead): %v", err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &Private{t: t, port: l.Addr().(*net.TCPAddr).Port}
	l.Close()
	p.Start()
	t.Cleanup(p.Stop)
	return p
}

// URL is the server's address for a cluster's config.
func (p *Private) URL() string { return fmt.Sprintf("redis://127.0.0.1:%d/0", p.port) }

// Start runs the server (again) and waits until it answers.
func (p *Private) Start() {
	p.t.Helper()
	p.cmd = exec.Command("redis-server", "--port", strconv.Itoa(p.port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", p.t.TempDir())
	if err := p.cmd.Start(); err != nil {
		p.t.Fatalf("redis-server: %v", err)
	}
	p.done = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) {
		cmd.Wait()
		close(done)
	}(p.cmd, p.done)
	rdb := redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", p.port)})
	defer rdb.Close()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := rdb.Ping(ctx).Err()
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("redis-server on port %d does not answer: %v", p.port, err)
		}
		select {
		case <-p.done:
			p.t.Fatalf("redis-server on port %d exited", p.port)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Stop kills the server (SIGKILL: nothing is saved) and waits for it.
func (p *Private) Stop() {
	if p.cmd == nil {
		return
	}
	p.cmd.Process.Kill()
	<-p.done
	p.cmd = nil
}
