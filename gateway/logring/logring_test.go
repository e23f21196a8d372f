package logring_test

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/moongate/moongate/gateway/logring"
)

func TestRingKeepsTheLastNRecordsInOrder(t *testing.T) {
	ring := logring.New(5, nil)
	var out bytes.Buffer
	log := slog.New(ring.Handler(slog.NewTextHandler(&out, nil)))
	for i := range 12 {
		log.Info("line", "i", i)
	}
	got := ring.Records()
	if len(got) != 5 {
		t.Fatalf("kept %d records, want 5", len(got))
	}
	for j, rec := range got {
		if want := fmt.Sprint(7 + j); rec.Attrs["i"] != want {
			t.Errorf("record %d: i=%s, want %s", j, rec.Attrs["i"], want)
		}
		if rec.Seq != uint64(8+j) {
			t.Errorf("record %d: seq %d, want %d", j, rec.Seq, 8+j)
		}
	}
	if ring.Seq() != 12 {
		t.Errorf("seq %d, want 12", ring.Seq())
	}
	if n := strings.Count(out.String(), "msg=line"); n != 12 {
		t.Errorf("the wrapped handler wrote %d records, want 12", n)
	}
}

func TestRingKeepsAttrsGroupsAndLevels(t *testing.T) {
	ring := logring.New(10, slog.LevelInfo)
	log := slog.New(ring.Handler(slog.NewJSONHandler(&bytes.Buffer{}, &slog.HandlerOptions{Level: slog.LevelDebug})))
	log.Debug("not kept")
	ep := log.With("endpoint", "/chat").WithGroup("req")
	ep.Error("script error", "err", "chat.lua:3: boom", slog.Group("client", "id", "c1"))
	long := strings.Repeat("x", 10000)
	log.Warn("long", "v", long)
	got := ring.Records()
	if len(got) != 2 {
		t.Fatalf("records %+v", got)
	}
	rec := got[0]
	if rec.Level != "ERROR" || rec.Message != "script error" || rec.Attrs["endpoint"] != "/chat" ||
		rec.Attrs["req.err"] != "chat.lua:3: boom" || rec.Attrs["req.client.id"] != "c1" {
		t.Errorf("record %+v", rec)
	}
	if n := len(got[1].Attrs["v"]); n > 4100 {
		t.Errorf("a long value kept whole: %d bytes", n)
	}
}

func TestRingIsSafeForConcurrentUse(t *testing.T) {
	ring := logring.New(50, nil)
	log := slog.New(ring.Handler(slog.NewTextHandler(io.Discard, nil)))
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				log.Info("x", "g", g, "i", i)
				if i%50 == 0 {
					ring.Records()
				}
			}
		}()
	}
	wg.Wait()
	if got := ring.Records(); len(got) != 50 || ring.Seq() != 1600 {
		t.Errorf("kept %d, seq %d", len(got), ring.Seq())
	}
}
