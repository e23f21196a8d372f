package main

import (
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/moongate/moongate/bench/load"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// find returns the outcome called name.
func find(outs []outcome, name string) (outcome, bool) {
	for _, o := range outs {
		if o.Name == name {
			return o, true
		}
	}
	return outcome{}, false
}

// table renders the outcomes as the bars of the performance issue.
func table(outs []outcome, quick bool) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Measured %s with `go run ./bench/report", time.Now().UTC().Format("2006-01-02"))
	if quick {
		b.WriteString(" -quick")
	}
	b.WriteString("`; every command and result is in [performance.json](performance.json).\n\n")
	b.WriteString("| bar | Moongate | baseline | ratio | target | met |\n| --- | --- | --- | --- | --- | --- |\n")
	row := func(name, a, base string, ratio float64, target string, met bool) {
		fmt.Fprintf(&b, "| %s | %s | %s | %.2f | %s | %s |\n", name, a, base, ratio, target, yes(met))
	}
	if o, ok := find(outs, "echo-auto"); ok && o.B != nil {
		row("1. echo, 100 conns, 64 B, 4 in flight, `states: auto`", rate(o.A), rate(*o.B), o.Ratio.PerSecond, "≥ 0.85", o.Ratio.PerSecond >= 0.85 && o.A.Lost == 0)
	}
	if o, ok := find(outs, "echo-states1"); ok && o.B != nil {
		row("1. the same, `states: 1`", rate(o.A), rate(*o.B), o.Ratio.PerSecond, "≥ 0.55", o.Ratio.PerSecond >= 0.55 && o.A.Lost == 0)
	}
	if o, ok := find(outs, "echo-latency-at-half-peak"); ok && o.B != nil {
		row(fmt.Sprintf("2. echo p99 at half the baseline's peak (%.0f/s), `states: auto`", o.A.PerSecond), p99(o.A), p99(*o.B), o.Ratio.P99, "≤ 1.5", o.Ratio.P99 <= 1.5)
	}
	if o, ok := find(outs, "echo-latency-at-half-peak-states1"); ok && o.B != nil {
		row("2. the same, `states: 1`", p99(o.A), p99(*o.B), o.Ratio.P99, "≤ 1.5", o.Ratio.P99 <= 1.5)
	}
	if o, ok := find(outs, "fanout-5000"); ok && o.B != nil {
		row("3. fan-out, 5,000 members, 20 msg/s: delivered", rate(o.A)+lost(o.A), rate(*o.B)+lost(*o.B), o.Ratio.PerSecond, "≥ 0.90, none lost", o.Ratio.PerSecond >= 0.9 && o.A.Lost == 0)
		row("3. fan-out delivery p99", p99(o.A), p99(*o.B), o.Ratio.P99, "≤ 2", o.Ratio.P99 <= 2)
	}
	if o, ok := find(outs, "idle"); ok && o.B != nil {
		row(fmt.Sprintf("4. idle memory, %d connections: RSS per connection", o.A.Conns), kib(o.A.RSSPerConn), kib(o.B.RSSPerConn), o.Ratio.RSSPerConn, "≤ 8 KiB", o.A.RSSPerConn <= 8<<10)
	}
	base, ok := find(outs, "scaling-100")
	for _, n := range []string{"1000", "10000"} {
		if o, ok2 := find(outs, "scaling-"+n); ok && ok2 && o.B != nil {
			keep := o.A.PerSecond / base.A.PerSecond
			fmt.Fprintf(&b, "| 6. echo at %s conns (in brackets: share kept of the 100-conn throughput) | %s (%.2f) | %s (%.2f) | %.2f | ≥ 0.80 kept | %s |\n",
				n, rate(o.A), keep, rate(*o.B), o.B.PerSecond/base.B.PerSecond, o.Ratio.PerSecond, yes(keep >= 0.8))
		}
	}
	for _, call := range []string{"http", "postgres"} {
		if o, ok := find(outs, "BenchmarkSuspendedCalls/call="+call); ok && o.B != nil {
			what := map[string]string{"http": "`http.get` of a local server that waits 20 ms", "postgres": "`db.query` of `pg_sleep(0.02)` on PostgreSQL"}[call]
			fmt.Fprintf(&b, "| 7. one state, 100 clients, one 20 ms call a message: %s (at most %.0f/s: %s) | %s, p50 %.1f ms, p99 %.1f ms | %s | %.1f | ≥ 50, p99 ≤ 60 ms | %s |\n",
				what, o.Metrics["cap-msg/s"], capBy(call), rate(o.A), ms(o.A.Latency.P50), ms(o.A.Latency.P99), rate(*o.B), o.Ratio.PerSecond,
				yes(o.Ratio.PerSecond >= 50 && o.A.Latency.P99 <= 60*time.Millisecond))
		} else if call == "postgres" {
			b.WriteString("| 7. the same, `pg_sleep(0.02)` on PostgreSQL | skipped: no PostgreSQL | | | ≥ 50, p99 ≤ 60 ms | |\n")
		}
	}
	if o, ok := find(outs, "BenchmarkChatHistory"); ok && o.B != nil {
		row("8. chat.lua, 48 clients in 8 rooms saying and reading, closed loop: messages with SQLite history against history in memory", rate(o.A), rate(*o.B), o.Ratio.PerSecond, "≥ 0.5", o.Ratio.PerSecond >= 0.5)
	}
	b.WriteString("\n![echo throughput and p99 latency against connection count](performance-scaling.png)\n\n")
	return b.String()
}

// capBy names what bounds the calls in the air at once of bar 7.
func capBy(call string) string {
	if call == "http" {
		return "64 connections a host, `outbound.MaxConnsPerHost`"
	}
	return "a pool of 64 connections"
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func yes(ok bool) string {
	if ok {
		return "yes"
	}
	return "**no**"
}

func rate(r load.Result) string { return fmt.Sprintf("%.0f/s", r.PerSecond) }
func p99(r load.Result) string  { return fmt.Sprintf("%.2f ms", float64(r.Latency.P99)/1e6) }
func kib(v float64) string      { return fmt.Sprintf("%.1f KiB", v/1024) }
func lost(r load.Result) string {
	if r.Lost == 0 {
		return ", 0 lost"
	}
	return fmt.Sprintf(", **%d lost**", r.Lost)
}

// plotScaling draws echo throughput and p99 latency against connection
// count, Moongate and the baseline, as a PNG.
func plotScaling(outs []outcome, path string) error {
	type point struct {
		conns          float64
		aRate, bRate   float64
		aP99ms, bP99ms float64
	}
	var pts []point
	for _, o := range outs {
		n, ok := strings.CutPrefix(o.Name, "scaling-")
		conns, err := strconv.Atoi(n)
		if !ok || err != nil || o.B == nil {
			continue
		}
		pts = append(pts, point{float64(conns), o.A.PerSecond / 1000, o.B.PerSecond / 1000,
			float64(o.A.Latency.P99) / 1e6, float64(o.B.Latency.P99) / 1e6})
	}
	sort.Slice(pts, func(i, j int) bool { return pts[i].conns < pts[j].conns })
	xy := func(f func(point) float64) plotter.XYs {
		out := make(plotter.XYs, len(pts))
		for i, p := range pts {
			out[i] = plotter.XY{X: p.conns, Y: f(p)}
		}
		return out
	}
	throughput := newPlot("Echo throughput", "thousand messages/s", false)
	latency := newPlot("Echo p99 latency", "ms", true)
	if err := plotutil.AddLinePoints(throughput,
		"Moongate (Lua echo, states: auto)", xy(func(p point) float64 { return p.aRate }),
		"baseline (bare gobwas/ws)", xy(func(p point) float64 { return p.bRate })); err != nil {
		return err
	}
	if err := plotutil.AddLinePoints(latency,
		"Moongate", xy(func(p point) float64 { return p.aP99ms }),
		"baseline", xy(func(p point) float64 { return p.bP99ms })); err != nil {
		return err
	}
	img := vgimg.New(vg.Points(900), vg.Points(360))
	dc := draw.New(img)
	canvases := plot.Align([][]*plot.Plot{{throughput, latency}}, draw.Tiles{Rows: 1, Cols: 2, PadX: vg.Points(20)}, dc)
	throughput.Draw(canvases[0][0])
	latency.Draw(canvases[0][1])
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = vgimg.PngCanvas{Canvas: img}.WriteTo(f)
	return err
}

func newPlot(title, yLabel string, legendTop bool) *plot.Plot {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = "connections (4 messages in flight each, 64 B)"
	p.Y.Label.Text = yLabel
	p.X.Scale = plot.LogScale{}
	p.X.Tick.Marker = plot.LogTicks{Prec: -1}
	p.Y.Min = 0
	p.Title.Padding = vg.Points(8)
	p.Legend.Top = legendTop
	p.Legend.Left = true
	p.Legend.XOffs = vg.Points(10)
	p.Legend.YOffs = vg.Points(-10)
	if !legendTop {
		p.Legend.YOffs = vg.Points(10)
	}
	return p
}
