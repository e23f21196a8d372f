// Command report reproduces docs/performance.md's load-tool figures in one
// run: it builds moongate and moongate-bench, serves
// bench/moongate-bench.yaml and the bare gobwas/ws baseline, runs every
// bar of the performance issue with moongate-bench -json, and writes the
// results (JSON), the scaling plot (PNG) and the results table into the
// marked section of docs/performance.md. It also runs the in-process
// benchmarks of bars measured with `go test -bench` (BenchmarkSuspendedCalls,
// BenchmarkChatHistory in ./bench) and puts their figures in the same table.
//
//	go run ./bench/report            # the full run (about 15 minutes)
//	go run ./bench/report -quick     # short rounds, to try it (about 3 minutes)
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/moongate/moongate/bench/load"
)

// outcome is one moongate-bench run: what moongate-bench printed with -json.
type outcome struct {
	Name  string       `json:"name"`
	Args  []string     `json:"args"`
	A     load.Result  `json:"a"`
	B     *load.Result `json:"b,omitempty"`
	Ratio *load.Ratio  `json:"ratio,omitempty"`
	// Metrics are the figures a `go test -bench` benchmark reported, by
	// unit (for the bars measured in process).
	Metrics map[string]float64 `json:"metrics,omitempty"`
	// Notes are the lines the benchmark logged (a cap that limited it).
	Notes []string `json:"notes,omitempty"`
}

type runner struct {
	bin      string // folder of the built binaries
	quick    bool
	outcomes []outcome
}

const (
	gatewayURL  = "ws://127.0.0.1:8080"
	baselineURL = "ws://127.0.0.1:9090"
)

func main() {
	quick := flag.Bool("quick", false, "short rounds and a short idle hold")
	docs := flag.String("docs", "docs", "folder of performance.md and where the plot and JSON go")
	flag.Parse()
	log.SetFlags(0)
	bin, err := os.MkdirTemp("", "moongate-report")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(bin)
	for _, cmd := range []string{"moongate", "moongate-bench"} {
		run("go", "build", "-o", filepath.Join(bin, cmd), "./cmd/"+cmd)
	}
	r := &runner{bin: bin, quick: *quick}
	r.all()
	r.goBenchmarks()
	if err := r.write(*docs); err != nil {
		log.Fatal(err)
	}
}

// all runs every bar, each against freshly started servers where memory
// is measured.
func (r *runner) all() {
	stop := r.servers()
	hold := "150s" // long enough for the Go runtime's periodic GC and scavenger
	if r.quick {
		hold = "10s"
	}
	r.bench("idle", "idle", "-conns", "19000", "-sources", "4", "-duration", hold,
		"-pid", strconv.Itoa(stop.gatewayPID), "-vs", baselineURL+"/echo", "-vs-pid", strconv.Itoa(stop.baselinePID))
	stop.stop()
	stop = r.servers()
	defer stop.stop()
	d := r.duration("20s", "4s")
	auto := r.bench("echo-auto", "echo", "-conns", "100", "-size", "64", "-inflight", "4", "-duration", d, "-rounds", "4", "-vs", baselineURL+"/echo")
	r.bench("echo-states1", "echo", "-url", gatewayURL+"/echo1", "-conns", "100", "-size", "64", "-inflight", "4", "-duration", d, "-rounds", "4", "-vs", baselineURL+"/echo")
	half := strconv.Itoa(int(auto.B.PerSecond / 2))
	r.bench("echo-latency-at-half-peak", "echo", "-conns", "100", "-size", "64", "-inflight", "64", "-rate", half, "-duration", d, "-rounds", "4", "-vs", baselineURL+"/echo")
	r.bench("echo-latency-at-half-peak-states1", "echo", "-url", gatewayURL+"/echo1", "-conns", "100", "-size", "64", "-inflight", "64", "-rate", half, "-duration", d, "-rounds", "4", "-vs", baselineURL+"/echo")
	r.bench("fanout-5000", "fanout", "-members", "5000", "-rate", "20", "-duration", r.duration("30s", "6s"), "-rounds", "2", "-parallel", "32", "-vs", baselineURL+"/room")
	for _, n := range []string{"100", "1000", "5000"} {
		r.bench("scaling-"+n, "echo", "-conns", n, "-size", "64", "-inflight", "4", "-duration", r.duration("12s", "4s"), "-rounds", "2", "-vs", baselineURL+"/echo")
	}
	// 10,000 a side would pass the load tool's open-file limit with both
	// sides held at once (20,000 here): the two sides run one after the other.
	a := r.bench("scaling-10000-moongate", "echo", "-conns", "10000", "-size", "64", "-inflight", "4", "-duration", r.duration("12s", "4s"), "-rounds", "1")
	b := r.bench("scaling-10000-baseline", "echo", "-url", baselineURL+"/echo", "-conns", "10000", "-size", "64", "-inflight", "4", "-duration", r.duration("12s", "4s"), "-rounds", "1")
	ratio := load.Compare(a.A, b.A)
	r.outcomes = append(r.outcomes, outcome{Name: "scaling-10000", A: a.A, B: &b.A, Ratio: &ratio})
}

func (r *runner) duration(full, quick string) string {
	if r.quick {
		return quick
	}
	return full
}

// bench runs moongate-bench with args and -json, and records what it printed.
func (r *runner) bench(name string, args ...string) outcome {
	args = append(args, "-json")
	log.Printf("%s: moongate-bench %s", name, strings.Join(args, " "))
	cmd := exec.Command(filepath.Join(r.bin, "moongate-bench"), args...)
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		log.Fatalf("%s: %v", name, err)
	}
	o := outcome{Name: name, Args: args}
	if err := json.Unmarshal(out, &o); err != nil {
		log.Fatalf("%s: %v: %s", name, err, out)
	}
	r.outcomes = append(r.outcomes, o)
	return o
}

// procs are the running gateway and baseline.
type procs struct {
	gatewayPID, baselinePID int
	stop                    func()
}

// servers starts the gateway on the bench config and the baseline, and
// waits until both answer.
func (r *runner) servers() procs {
	for _, addr := range []string{"127.0.0.1:8080", "127.0.0.1:9090"} {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			log.Fatalf("%s is taken: stop what serves there first, or the figures would be someone else's", addr)
		}
	}
	gw := exec.Command(filepath.Join(r.bin, "moongate"), "run", "-config", "bench/moongate-bench.yaml", "-log-level", "warn", "-watch=false")
	base := exec.Command(filepath.Join(r.bin, "moongate-bench"), "baseline", "-listen", "127.0.0.1:9090")
	for _, c := range []*exec.Cmd{gw, base} {
		c.Stderr = os.Stderr
		if err := c.Start(); err != nil {
			log.Fatal(err)
		}
	}
	waitHTTP("http://127.0.0.1:8080/healthz")
	waitTCP("127.0.0.1:9090")
	return procs{gatewayPID: gw.Process.Pid, baselinePID: base.Process.Pid, stop: func() {
		for _, c := range []*exec.Cmd{gw, base} {
			c.Process.Signal(os.Interrupt)
			done := make(chan struct{})
			go func() { c.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(20 * time.Second):
				c.Process.Kill()
				<-done
			}
		}
	}}
}

func waitHTTP(url string) {
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if resp, err := http.Get(url); err == nil {
			resp.Body.Close()
			return
		}
	}
	log.Fatalf("%s does not answer", url)
}

func waitTCP(addr string) {
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return
		}
	}
	log.Fatalf("%s does not answer", addr)
}

func run(name string, args ...string) {
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		log.Fatalf("%s %s: %v", name, strings.Join(args, " "), err)
	}
}

// write saves the JSON, the plot and the table in docs/performance.md.
func (r *runner) write(docs string) error {
	js, err := json.MarshalIndent(r.outcomes, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(docs, "performance.json"), append(js, '\n'), 0o644); err != nil {
		return err
	}
	if err := plotScaling(r.outcomes, filepath.Join(docs, "performance-scaling.png")); err != nil {
		return err
	}
	return replaceSection(filepath.Join(docs, "performance.md"), table(r.outcomes, r.quick))
}

const (
	beginMark = "<!-- results: bench/report writes from here -->"
	endMark   = "<!-- results: to here -->"
)

// replaceSection puts text between the marks of the file at path.
func replaceSection(path, text string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	i, j := bytes.Index(b, []byte(beginMark)), bytes.Index(b, []byte(endMark))
	if i < 0 || j < i {
		return fmt.Errorf("%s: no %q ... %q section", path, beginMark, endMark)
	}
	var out bytes.Buffer
	out.Write(b[:i+len(beginMark)])
	out.WriteString("\n" + text)
	out.Write(b[j:])
	return os.WriteFile(path, out.Bytes(), 0o644)
}
