package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/moongate/moongate/bench/load"
	"github.com/moongate/moongate/gateway/rlimit"
)

// common are the flags every load mode takes.
type common struct {
	url      string
	vs       string
	duration time.Duration
	rounds   int
	json     bool
	parallel int
	sources  int
	quiet    bool
}

func (c *common) register(fs *flag.FlagSet, defaultURL string, rounds int) {
	fs.StringVar(&c.url, "url", defaultURL, "server to load (A)")
	fs.StringVar(&c.vs, "vs", "", "a second server (B) to run the same load against, interleaved; the ratio A/B is printed")
	fs.DurationVar(&c.duration, "duration", 10*time.Second, "load time per server, over all rounds")
	fs.IntVar(&c.rounds, "rounds", rounds, "rounds per server, interleaved A B A B with -vs")
	fs.BoolVar(&c.json, "json", false, "print the results as JSON")
	fs.IntVar(&c.parallel, "parallel", 64, "connections dialed at once")
	fs.IntVar(&c.sources, "sources", 1, "loopback source addresses to dial from (127.0.0.1, .2, ...); about 28,000 connections fit one")
	fs.BoolVar(&c.quiet, "quiet", false, "no progress lines on stderr")
}

// dialer returns the dialer the flags ask for, with the open-file limit raised.
func (c *common) dialer() *load.Dialer {
	if _, err := rlimit.RaiseOpenFiles(); err != nil {
		fmt.Fprintln(os.Stderr, "warning:", err)
	}
	d := &load.Dialer{}
	if c.sources > 1 {
		d.Sources = load.LoopbackSources(c.sources)
	}
	return d
}

func (c *common) progress() io.Writer {
	if c.quiet || c.json {
		return nil
	}
	return os.Stderr
}

// open builds one load against url; vs says whether it is the B side.
type open func(ctx context.Context, d *load.Dialer, url string, vs bool) (load.Load, error)

// interleaved opens A (and B with -vs), runs them in alternating rounds
// with both connected, and reports.
func (c *common) interleaved(ctx context.Context, openLoad open) error {
	d := c.dialer()
	loads, names := []load.Load{}, []string{}
	for i, u := range c.targets() {
		l, err := openLoad(ctx, d, u, i == 1)
		if err != nil {
			closeLoads(loads)
			return err
		}
		loads, names = append(loads, l), append(names, "AB"[i:i+1])
	}
	defer closeLoads(loads)
	load.RunRounds(ctx, loads, names, c.duration, c.rounds, c.progress())
	return c.report(results(loads))
}

// sequential opens, runs and closes A, then B: for loads too large to hold
// both at once.
func (c *common) sequential(ctx context.Context, openLoad open) error {
	d := c.dialer()
	var out []load.Result
	for i, u := range c.targets() {
		l, err := openLoad(ctx, d, u, i == 1)
		if err != nil {
			return err
		}
		l.Run(ctx, c.duration)
		out = append(out, l.Result())
		l.Close()
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	return c.report(out)
}

func (c *common) targets() []string {
	if c.vs == "" {
		return []string{c.url}
	}
	return []string{c.url, c.vs}
}

func results(loads []load.Load) []load.Result {
	out := make([]load.Result, len(loads))
	for i, l := range loads {
		out[i] = l.Result()
	}
	return out
}

func closeLoads(loads []load.Load) {
	for _, l := range loads {
		l.Close()
	}
}

// report prints the results (and their ratio, for two) as text or JSON.
func (c *common) report(rs []load.Result) error {
	type report struct {
		A     load.Result  `json:"a"`
		B     *load.Result `json:"b,omitempty"`
		Ratio *load.Ratio  `json:"ratio,omitempty"`
	}
	out := report{A: rs[0]}
	if len(rs) == 2 {
		r := load.Compare(rs[0], rs[1])
		out.B, out.Ratio = &rs[1], &r
	}
	if c.json {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	for i, r := range rs {
		fmt.Printf("%c: ", "AB"[i])
		r.Print(os.Stdout)
	}
	if out.Ratio != nil {
		out.Ratio.Print(os.Stdout)
	}
	return nil
}

// parse parses args into fs, treating a bad flag as an error.
func parse(fs *flag.FlagSet, args []string) error {
	fs.SetOutput(os.Stderr)
	return fs.Parse(args)
}
