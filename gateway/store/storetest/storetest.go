// Package storetest checks that an implementation of store.KV keeps the
// store's guarantees. The in-process store and the cluster's Redis store
// both run it: one set of tests for the seam.
package storetest

import (
	"context"
	"errors"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/moongate/moongate/gateway/store"
)

// Run runs every check against stores made by open, one fresh (empty)
// store per check.
func Run(t *testing.T, open func(t *testing.T) store.KV) {
	checks := []struct {
		name string
		fn   func(*testing.T, store.KV)
	}{
		{"Values", values},
		{"AddIfAbsent", addIfAbsent},
		{"SetIf", setIf},
		{"Incr", incr},
		{"Delete", deleteIf},
		{"Keys", keys},
		{"TTLAndExpire", ttlAndExpire},
		{"Expiry", expiry},
		{"Lists", lists},
		{"Hashes", hashes},
		{"Owners", owners},
		{"ConcurrentIncr", concurrentIncr},
		{"ConcurrentAdd", concurrentAdd},
	}
	for _, c := range checks {
		t.Run(c.name, func(t *testing.T) { c.fn(t, open(t)) })
	}
}

var ctx = context.Background()

// The checks call the store through these, failing at once on an error.
func ok(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func must[T any](t *testing.T) func(T, error) T {
	return func(v T, err error) T {
		t.Helper()
		ok(t, err)
		return v
	}
}

func values(t *testing.T, s store.KV) {
	for _, v := range []any{
		"text", "", "123", int64(42), int64(-7), float64(1.5), true, false,
		[]any{int64(1), "two", 3.25, false},
		map[string]any{"nick": "ann", "n": int64(3), "nested": map[string]any{"list": []any{"x"}}},
	} {
		if err := s.Set(ctx, "k", v, 0, ""); err != nil {
			t.Fatalf("set %#v: %v", v, err)
		}
		got, ok, err := s.Get(ctx, "k")
		if err != nil || !ok || !reflect.DeepEqual(got, v) {
			t.Errorf("get after set %#v: %#v %v %v", v, got, ok, err)
		}
	}
	if v, ok, err := s.Get(ctx, "absent"); v != nil || ok || err != nil {
		t.Errorf("absent key: %v %v %v", v, ok, err)
	}
}

func addIfAbsent(t *testing.T, s store.KV) {
	if !must[bool](t)(s.Add(ctx, "nick:ann", "c1", 0, "")) {
		t.Fatal("first add refused")
	}
	if must[bool](t)(s.Add(ctx, "nick:ann", "c2", 0, "")) {
		t.Fatal("second add stored")
	}
	if v, _, _ := s.Get(ctx, "nick:ann"); v != "c1" {
		t.Errorf("value = %v, want the first add's", v)
	}
}

func setIf(t *testing.T, s store.KV) {
	ok(t, s.Set(ctx, "top", int64(10), time.Hour, ""))
	if must[bool](t)(s.SetIf(ctx, "top", int64(20), int64(9), 0)) {
		t.Error("set with a wrong old value")
	}
	if must[bool](t)(s.SetIf(ctx, "top", int64(20), float64(10), 0)) {
		t.Error("a float equals no whole number here, as in the in-process store")
	}
	if must[bool](t)(s.SetIf(ctx, "top", int64(20), []any{int64(10)}, 0)) {
		t.Error("a table never equals")
	}
	if !must[bool](t)(s.SetIf(ctx, "top", int64(20), int64(10), 0)) {
		t.Fatal("compare-and-set with the right old value refused")
	}
	if left, ok, _ := s.TTL(ctx, "top"); !ok || left <= 0 {
		t.Errorf("SetIf without ttl must keep the expiry: %v %v", left, ok)
	}
	if must[bool](t)(s.SetIf(ctx, "absent", "x", "y", 0)) {
		t.Error("set of an absent key")
	}
}

func incr(t *testing.T, s store.KV) {
	for want := int64(1); want <= 3; want++ {
		if n := must[int64](t)(s.Incr(ctx, "rate", 1, time.Hour)); n != want {
			t.Fatalf("incr = %d, want %d", n, want)
		}
	}
	if left, ok, _ := s.TTL(ctx, "rate"); !ok || left <= 0 || left > time.Hour {
		t.Errorf("ttl given at creation: %v %v", left, ok)
	}
	if n := must[int64](t)(s.Incr(ctx, "rate", -5, 0)); n != -2 {
		t.Errorf("incr by -5 = %d", n)
	}
	if left, _, _ := s.TTL(ctx, "rate"); left <= 0 {
		t.Error("an existing key keeps its expiry")
	}
	ok(t, s.Set(ctx, "text", "x", 0, ""))
	if _, err := s.Incr(ctx, "text", 1, 0); !errors.Is(err, store.ErrNotInteger) {
		t.Errorf("incr of a string: %v, want ErrNotInteger", err)
	}
	ok(t, s.Set(ctx, "digits", "12", 0, ""))
	if _, err := s.Incr(ctx, "digits", 1, 0); !errors.Is(err, store.ErrNotInteger) {
		t.Errorf("incr of the string \"12\": %v, want ErrNotInteger", err)
	}
	if v, _, _ := s.Get(ctx, "rate"); v != int64(-2) {
		t.Errorf("get of a counter = %#v", v)
	}
}

func deleteIf(t *testing.T, s store.KV) {
	ok(t, s.Set(ctx, "k", "c1", 0, ""))
	if must[bool](t)(s.DeleteIf(ctx, "k", "c2")) {
		t.Error("deleted with the wrong value")
	}
	if !must[bool](t)(s.DeleteIf(ctx, "k", "c1")) {
		t.Error("not deleted with the right value")
	}
	ok(t, s.Set(ctx, "n", int64(3), 0, ""))
	if !must[bool](t)(s.DeleteIf(ctx, "n", int64(3))) {
		t.Error("a number compares by value")
	}
	ok(t, s.Set(ctx, "k", "v", 0, ""))
	if !must[bool](t)(s.Delete(ctx, "k")) || must[bool](t)(s.Delete(ctx, "k")) {
		t.Error("delete reports whether the key was there")
	}
}

func keys(t *testing.T, s store.KV) {
	for _, k := range []string{"b:2", "a:1", "b:1", "c", "b*[x]", "b?"} {
		ok(t, s.Set(ctx, k, "v", 0, ""))
	}
	if got := must[[]string](t)(s.Keys(ctx, "b", 10)); !reflect.DeepEqual(got, []string{"b*[x]", "b:1", "b:2", "b?"}) {
		t.Errorf("keys b = %q", got)
	}
	if got := must[[]string](t)(s.Keys(ctx, "b*", 10)); !reflect.DeepEqual(got, []string{"b*[x]"}) {
		t.Errorf("a prefix is not a pattern: keys b* = %q", got)
	}
	if got := must[[]string](t)(s.Keys(ctx, "", 2)); !reflect.DeepEqual(got, []string{"a:1", "b*[x]"}) {
		t.Errorf("keys with limit 2 = %q", got)
	}
}

func ttlAndExpire(t *testing.T, s store.KV) {
	if _, ok, _ := s.TTL(ctx, "absent"); ok {
		t.Error("ttl of an absent key")
	}
	ok(t, s.Set(ctx, "k", "v", 0, ""))
	if left, ok, _ := s.TTL(ctx, "k"); !ok || left != 0 {
		t.Errorf("a key without expiry: %v %v", left, ok)
	}
	if !must[bool](t)(s.Expire(ctx, "k", time.Hour)) {
		t.Error("expire of an existing key")
	}
	if left, _, _ := s.TTL(ctx, "k"); left <= 59*time.Minute || left > time.Hour {
		t.Errorf("ttl after expire(1h) = %v", left)
	}
	if !must[bool](t)(s.Expire(ctx, "k", 0)) {
		t.Error("expire(0) of an existing key")
	}
	if left, ok, _ := s.TTL(ctx, "k"); !ok || left != 0 {
		t.Errorf("expire(0) makes it last: %v %v", left, ok)
	}
	if must[bool](t)(s.Expire(ctx, "absent", time.Hour)) {
		t.Error("expire of an absent key")
	}
}

// expiry waits for a short-lived key to go, on the condition (polling),
// never for a fixed time.
func expiry(t *testing.T, s store.KV) {
	ok(t, s.Set(ctx, "short", "v", 50*time.Millisecond, ""))
	ok(t, s.Set(ctx, "long", "v", 0, ""))
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, ok, _ := s.Get(ctx, "short"); !ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("a key with a 50 ms ttl is still there after 10 s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if must[bool](t)(s.Add(ctx, "short", "again", 0, "")) != true {
		t.Error("an expired key can be added again")
	}
	if _, ok, _ := s.Get(ctx, "long"); !ok {
		t.Error("a key without ttl went")
	}
}

func lists(t *testing.T, s store.KV) {
	for i := int64(1); i <= 5; i++ {
		if n := must[int](t)(s.Push(ctx, "log", i, 3)); n != int(min(i, 3)) {
			t.Fatalf("push %d: length %d", i, n)
		}
	}
	if got := must[[]any](t)(s.Range(ctx, "log", 1, -1)); !reflect.DeepEqual(got, []any{int64(3), int64(4), int64(5)}) {
		t.Errorf("range = %#v", got)
	}
	if got := must[[]any](t)(s.Range(ctx, "log", -2, -1)); !reflect.DeepEqual(got, []any{int64(4), int64(5)}) {
		t.Errorf("range -2..-1 = %#v", got)
	}
	if got := must[[]any](t)(s.Range(ctx, "log", 2, 2)); !reflect.DeepEqual(got, []any{int64(4)}) {
		t.Errorf("range 2..2 = %#v", got)
	}
	if got := must[[]any](t)(s.Range(ctx, "absent", 1, -1)); len(got) != 0 {
		t.Errorf("range of an absent list = %#v", got)
	}
	must[int](t)(s.Push(ctx, "mixed", map[string]any{"a": "b"}, 10))
	if got, _, _ := s.Get(ctx, "mixed"); !reflect.DeepEqual(got, []any{map[string]any{"a": "b"}}) {
		t.Errorf("get of a list = %#v", got)
	}
	ok(t, s.Set(ctx, "text", "x", 0, ""))
	if _, err := s.Push(ctx, "text", "y", 10); !errors.Is(err, store.ErrWrongType) {
		t.Errorf("push to a string: %v, want ErrWrongType", err)
	}
	if _, err := s.Range(ctx, "text", 1, -1); !errors.Is(err, store.ErrWrongType) {
		t.Errorf("range of a string: %v, want ErrWrongType", err)
	}
}

func hashes(t *testing.T, s store.KV) {
	must[int64](t)(s.HIncr(ctx, "votes", "yes", 1))
	must[int64](t)(s.HIncr(ctx, "votes", "yes", 2))
	if n := must[int64](t)(s.HIncr(ctx, "votes", "no", -1)); n != -1 {
		t.Errorf("hincr no = %d", n)
	}
	if got, _, _ := s.Get(ctx, "votes"); !reflect.DeepEqual(got, map[string]any{"yes": int64(3), "no": int64(-1)}) {
		t.Errorf("get of a hash = %#v", got)
	}
	ok(t, s.Set(ctx, "text", "x", 0, ""))
	if _, err := s.HIncr(ctx, "text", "f", 1); !errors.Is(err, store.ErrWrongType) {
		t.Errorf("hincr of a string: %v, want ErrWrongType", err)
	}
}

func owners(t *testing.T, s store.KV) {
	ok(t, s.Set(ctx, "held", "v", 0, "c1"))
	must[bool](t)(s.Add(ctx, "claim", "v", time.Hour, "c1"))
	must[bool](t)(s.Add(ctx, "other", "v", 0, "c2"))
	ok(t, s.Set(ctx, "reset", "v", 0, "c1"))
	ok(t, s.Set(ctx, "reset", "mine now", 0, "")) // set again without an owner
	ok(t, s.Set(ctx, "moved", "v", 0, "c1"))
	ok(t, s.Set(ctx, "moved", "v2", 0, "c3")) // taken over by another owner
	if n := must[int](t)(s.ReleaseOwner(ctx, "c1")); n != 2 {
		t.Errorf("released %d keys, want 2", n)
	}
	for key, want := range map[string]bool{"held": false, "claim": false, "other": true, "reset": true, "moved": true} {
		if _, ok, _ := s.Get(ctx, key); ok != want {
			t.Errorf("after release, %s present = %v, want %v", key, ok, want)
		}
	}
	if n := must[int](t)(s.ReleaseOwner(ctx, "c1")); n != 0 {
		t.Errorf("a second release removed %d", n)
	}
	if n := must[int](t)(s.ReleaseOwner(ctx, "c3")); n != 1 {
		t.Errorf("release c3 removed %d, want 1", n)
	}
}

func concurrentIncr(t *testing.T, s store.KV) {
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 100 {
				if _, err := s.Incr(ctx, "n", 1, 0); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if v, _, _ := s.Get(ctx, "n"); v != int64(800) {
		t.Errorf("n = %v, want 800", v)
	}
}

func concurrentAdd(t *testing.T, s store.KV) {
	var wg sync.WaitGroup
	var mu sync.Mutex
	won := 0
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ok, err := s.Add(ctx, "nick:ann", int64(i), 0, "")
			if err != nil {
				t.Error(err)
			}
			if ok {
				mu.Lock()
				won++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if won != 1 {
		t.Errorf("%d adds of one key won, want 1", won)
	}
}
