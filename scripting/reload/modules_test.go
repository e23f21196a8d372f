package reload

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/moongate/moongate/gateway"
	"github.com/moongate/moongate/gateway/config"
	"github.com/moongate/moongate/gateway/metrics"
	"github.com/moongate/moongate/scripting"
)

// TestWatcherReloadsTheServicesOfASavedModule: /a and /b require
// lib/shared.lua, /c does not; saving the module reloads /a and /b only,
// and saving it unchanged or broken replaces nothing.
func TestWatcherReloadsTheServicesOfASavedModule(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "lib"), 0o755); err != nil {
		t.Fatal(err)
	}
	user := "local s = require('lib.shared')\nreturn { message = function(c, d) c:send(s.tag) end }\n"
	for name, content := range map[string]string{
		"a.lua":          user,
		"b.lua":          user,
		"c.lua":          "return {}\n",
		"lib/shared.lua": "return { tag = 'one' }\n",
		"config.yaml": "endpoints:\n  - path: /a\n    script: a.lua\n  - path: /b\n    script: b.lua\n" +
			"  - path: /c\n    script: c.lua\n",
	} {
		write(t, dir, name, content)
	}
	cfg, err := config.Load(filepath.Join(dir, "config.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	met := metrics.New()
	services := map[string]*scripting.Service{}
	gw := map[string]gateway.Service{}
	for _, ep := range cfg.Endpoints {
		s, err := scripting.New(ep, log, met.Endpoint(ep.Path))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(s.Close)
		services[ep.Path], gw[ep.Path] = s, s
	}
	srv, err := gateway.New(cfg, gw, log, met)
	if err != nil {
		t.Fatal(err)
	}
	m := New(cfg, services, srv, log, met)
	shared := filepath.Join(dir, "lib", "shared.lua")
	if _, _, modules := m.watched(); !slices.Equal(sorted(modules[shared]), []string{"/a", "/b"}) || len(modules) != 1 {
		t.Fatalf("watched modules %v", modules)
	}
	w, err := m.NewWatcher()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- w.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	versions := func() (a, b, c string) {
		return services["/a"].Status().Version, services["/b"].Status().Version, services["/c"].Status().Version
	}
	a0, b0, c0 := versions()

	write(t, dir, "lib/shared.lua", "return { tag = 'two' }\n")
	waitUntil(t, "/a and /b reloaded", func() bool {
		a, b, _ := versions()
		return a != a0 && b != b0
	})
	a1, b1, c1 := versions()
	if c1 != c0 || a1 != b1 {
		t.Errorf("versions after the save: a %s b %s c %s (c was %s)", a1, b1, c1, c0)
	}
	write(t, dir, "lib/shared.lua", "return { tag = \n")
	waitUntil(t, "the broken module refused", func() bool {
		return services["/a"].Status().LastError != "" && services["/b"].Status().LastError != ""
	})
	if a, b, _ := versions(); a != a1 || b != b1 {
		t.Errorf("a broken module replaced the version: %s %s", a, b)
	}
	write(t, dir, "lib/shared.lua", "return { tag = 'two' }\n")
	waitUntil(t, "the running content back, recovered", func() bool {
		return services["/a"].Status().LastError == "" && services["/b"].Status().LastError == ""
	})
	if a, b, _ := versions(); a != a1 || b != b1 {
		t.Errorf("the running content saved again replaced the version: %s %s", a, b)
	}
}

func sorted(s []string) []string { return slices.Sorted(slices.Values(s)) }

// waitUntil polls cond for up to 10 s.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
