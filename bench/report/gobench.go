package main

import (
	"bufio"
	"bytes"
	"log"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/moongate/moongate/bench/load"
)

// goBenchmarks runs the bars measured in process with `go test -bench`
// (issue 11: handlers suspended on 20 ms calls; chat with SQLite history
// against chat in memory) and records their figures as outcomes.
func (r *runner) goBenchmarks() {
	suspended, chat := "10000x", "50000x"
	if r.quick {
		suspended, chat = "3000x", "10000x"
	}
	r.goBench("SuspendedCalls", suspended)
	r.goBench("ChatHistory", chat)
}

// goBench runs Benchmark<name> of ./bench b.N=benchtime times and adds an
// outcome for each (sub-)benchmark it reported.
func (r *runner) goBench(name, benchtime string) {
	args := []string{"test", "-run", "^$", "-bench", "^Benchmark" + name + "$", "-benchtime", benchtime, "./bench/"}
	log.Printf("%s: go %s", name, strings.Join(args, " "))
	cmd := exec.Command("go", args...)
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	os.Stderr.Write(out)
	if err != nil {
		log.Fatalf("%s: %v", name, err)
	}
	for _, o := range parseBench(out) {
		o.Args = args
		r.outcomes = append(r.outcomes, finishBench(o))
	}
}

// parseBench reads `go test -bench` output: one outcome per result line,
// named after the benchmark (without its -GOMAXPROCS suffix), with its
// metrics by unit and the lines it logged.
func parseBench(out []byte) []outcome {
	var outs []outcome
	logged := false // the lines being read were logged by the last benchmark reported
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		line := sc.Text()
		f := strings.Fields(line)
		switch {
		case len(f) >= 4 && strings.HasPrefix(f[0], "Benchmark") && len(f)%2 == 0:
			name := f[0]
			if i := strings.LastIndexByte(name, '-'); i > 0 {
				name = name[:i]
			}
			o := outcome{Name: name, Metrics: map[string]float64{}}
			for i := 2; i+1 < len(f); i += 2 {
				if v, err := strconv.ParseFloat(f[i], 64); err == nil {
					o.Metrics[f[i+1]] = v
				}
			}
			outs = append(outs, o)
			logged = false
		case strings.HasPrefix(line, "--- "): // --- BENCH: its log; --- SKIP, --- FAIL: another's
			logged = strings.HasPrefix(line, "--- BENCH: ") && len(outs) > 0
		case strings.HasPrefix(line, "    ") && logged:
			outs[len(outs)-1].Notes = append(outs[len(outs)-1].Notes, strings.TrimSpace(line))
		}
	}
	return outs
}

// finishBench fills an in-process benchmark's Result figures from its
// metrics: for the suspended calls, the Lua state against what blocking
// calls allow one state; for the chat, SQLite history against memory.
func finishBench(o outcome) outcome {
	m := o.Metrics
	msec := func(v float64) time.Duration { return time.Duration(v * float64(time.Millisecond)) }
	switch {
	case strings.HasPrefix(o.Name, "BenchmarkSuspendedCalls"):
		o.A = load.Result{Mode: "suspended", Conns: 100, PerSecond: m["msg/s"], Latency: load.Latency{P50: msec(m["p50-ms"]), P99: msec(m["p99-ms"])}}
		o.B = &load.Result{Mode: "blocking calls on one state (computed: 1/20 ms)", Conns: 100, PerSecond: 50}
		o.Ratio = &load.Ratio{PerSecond: m["x-blocking"]}
	case o.Name == "BenchmarkChatHistory":
		o.A = load.Result{Mode: "chat, SQLite history", Conns: 48, PerSecond: m["sqlite-msg/s"], Latency: load.Latency{P99: msec(m["sqlite-p99-ms"])}}
		o.B = &load.Result{Mode: "chat, history in memory", Conns: 48, PerSecond: m["memory-msg/s"], Latency: load.Latency{P99: msec(m["memory-p99-ms"])}}
		ratio := load.Compare(o.A, *o.B)
		o.Ratio = &ratio
	}
	return o
}
