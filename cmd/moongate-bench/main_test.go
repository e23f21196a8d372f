package main

import (
	"context"
	"encoding/json"
	"io"
	"os"
	"strings"
	"testing"

	"github.com/moongate/moongate/bench/baseline"
	"github.com/moongate/moongate/bench/load"
)

// stdout runs f and returns what it printed on standard output.
func stdout(t *testing.T, f func() error) (string, error) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	saved := os.Stdout
	os.Stdout = w
	out := make(chan string)
	go func() {
		b, _ := io.ReadAll(r)
		out <- string(b)
	}()
	ferr := f()
	os.Stdout = saved
	w.Close()
	return <-out, ferr
}

func TestEchoVsPrintsBothSidesAndTheRatio(t *testing.T) {
	base := baseline.Start(t)
	out, err := stdout(t, func() error {
		return run(context.Background(), []string{"echo", "-url", base + "/echo", "-vs", base + "/echo",
			"-conns", "4", "-duration", "400ms", "-rounds", "2", "-json"})
	})
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		A, B  load.Result
		Ratio *load.Ratio
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if got.A.Received == 0 || got.B.Received == 0 || got.A.Lost != 0 || got.Ratio == nil || got.Ratio.PerSecond <= 0 {
		t.Fatalf("report %s", out)
	}
	if got.A.Seconds < 0.39 || got.A.Seconds > 0.41 {
		t.Errorf("A ran %.3f s, want 0.4 over its two rounds", got.A.Seconds)
	}
}

func TestFanoutTextReport(t *testing.T) {
	base := baseline.Start(t)
	out, err := stdout(t, func() error {
		return run(context.Background(), []string{"fanout", "-url", base + "/room", "-proto", "raw",
			"-members", "20", "-rooms", "2", "-publishers", "2", "-rate", "100", "-duration", "300ms", "-rounds", "1"})
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"A: fanout ws://", "22 conns", "msgs/s; latency p50", "lost 0, errors 0"} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
}

func TestBadModeAndFlagsAreErrors(t *testing.T) {
	if err := run(context.Background(), []string{"nosuch"}); err == nil || !strings.Contains(err.Error(), "unknown mode") {
		t.Errorf("unknown mode: %v", err)
	}
	if err := run(context.Background(), []string{"fanout", "-proto", "smoke", "-url", "ws://127.0.0.1:1/x"}); err == nil {
		t.Error("an unknown protocol was accepted")
	}
	if err := run(context.Background(), []string{"echo", "-conns", "x"}); err == nil {
		t.Error("a bad flag value was accepted")
	}
}
