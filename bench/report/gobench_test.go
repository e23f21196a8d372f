package main

import (
	"strings"
	"testing"
)

// benchOutput is what `go test -bench` printed for the in-process bars.
const benchOutput = `goos: linux
goarch: amd64
pkg: github.com/moongate/moongate/bench
BenchmarkSuspendedCalls/call=http-2         	    5000	      3200 cap-msg/s	      2911 msg/s	        33.50 p50-ms	        44.61 p99-ms	        58.22 x-blocking
--- BENCH: BenchmarkSuspendedCalls/call=http-2
    suspend_test.go:119: throughput 2911 msg/s is near the cap of 64 calls in the air at once
--- SKIP: BenchmarkSuspendedCalls/call=postgres
    suspend_test.go:190: PostgreSQL unreachable
BenchmarkChatHistory-2   	   20000	     74742 memory-deliveries/s	     12519 memory-msg/s	        18.09 memory-p99-ms	     18330 sqlite-deliveries/s	      3068 sqlite-msg/s	        64.64 sqlite-p99-ms	         0.2451 sqlite/memory
PASS
ok  	github.com/moongate/moongate/bench	8.878s
`

func TestParseBenchFillsTheBars(t *testing.T) {
	var outs []outcome
	for _, o := range parseBench([]byte(benchOutput)) {
		outs = append(outs, finishBench(o))
	}
	if len(outs) != 2 {
		t.Fatalf("got %d outcomes, want 2: %+v", len(outs), outs)
	}
	h := outs[0]
	if h.Name != "BenchmarkSuspendedCalls/call=http" || h.A.PerSecond != 2911 || h.Ratio.PerSecond != 58.22 || h.A.Latency.P99.Milliseconds() != 44 || len(h.Notes) != 1 {
		t.Errorf("http outcome %+v", h)
	}
	c := outs[1]
	if c.Name != "BenchmarkChatHistory" || c.A.PerSecond != 3068 || c.B.PerSecond != 12519 || c.Ratio.PerSecond < 0.245 || c.Ratio.PerSecond > 0.246 {
		t.Errorf("chat outcome %+v", c)
	}
	tab := table(outs, true)
	for _, want := range []string{
		"| 7. one state, 100 clients, one 20 ms call a message: `http.get` of a local server that waits 20 ms (at most 3200/s: 64 connections a host, `outbound.MaxConnsPerHost`) | 2911/s, p50 33.5 ms, p99 44.6 ms | 50/s | 58.2 | ≥ 50, p99 ≤ 60 ms | yes |",
		"| 7. the same, `pg_sleep(0.02)` on PostgreSQL | skipped: no PostgreSQL |",
		"| 3068/s | 12519/s | 0.25 | ≥ 0.5 | **no** |",
	} {
		if !strings.Contains(tab, want) {
			t.Errorf("table lacks %q:\n%s", want, tab)
		}
	}
}
