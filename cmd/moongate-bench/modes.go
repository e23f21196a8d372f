package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/moongate/moongate/bench/baseline"
	"github.com/moongate/moongate/bench/load"
	"github.com/moongate/moongate/gateway/rlimit"
)

func runEcho(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("echo", flag.ContinueOnError)
	var c common
	c.register(fs, "ws://127.0.0.1:8080/echo", 4)
	cfg := load.EchoConfig{}
	fs.IntVar(&cfg.Conns, "conns", 100, "connections")
	fs.IntVar(&cfg.Size, "size", 64, "message bytes (at least 16)")
	fs.IntVar(&cfg.InFlight, "inflight", 4, "messages in flight per connection")
	fs.Float64Var(&cfg.Rate, "rate", 0, "messages per second over all connections; 0: as fast as the server answers")
	if err := parse(fs, args); err != nil {
		return err
	}
	cfg.Parallel = c.parallel
	return c.interleaved(ctx, func(ctx context.Context, d *load.Dialer, url string, _ bool) (load.Load, error) {
		cfg := cfg
		cfg.URL = url
		return load.NewEcho(ctx, d, cfg)
	})
}

// roomFlags are the flags of the fanout and chat modes.
type roomFlags struct {
	common
	cfg     load.RoomConfig
	proto   string
	vsProto string
}

func (f *roomFlags) register(fs *flag.FlagSet, members, rooms int, rate float64) {
	f.common.register(fs, "ws://127.0.0.1:8080/chat", 4)
	fs.IntVar(&f.cfg.Members, "members", members, "connections that receive")
	fs.IntVar(&f.cfg.Rooms, "rooms", rooms, "rooms the members are spread over")
	fs.Float64Var(&f.cfg.Rate, "rate", rate, "messages published per second, all publishers together")
	fs.IntVar(&f.cfg.Size, "size", 64, "published text bytes (at least 20)")
	fs.StringVar(&f.proto, "proto", "chat", "protocol of -url: chat (hello, join, say) or raw (the baseline's /room?room=)")
	fs.StringVar(&f.vsProto, "vs-proto", "raw", "protocol of -vs")
}

func (f *roomFlags) run(ctx context.Context, mode string) error {
	f.cfg.Parallel = f.parallel
	return f.interleaved(ctx, func(ctx context.Context, d *load.Dialer, url string, vs bool) (load.Load, error) {
		cfg := f.cfg
		cfg.URL = url
		name := f.proto
		if vs {
			name = f.vsProto
		}
		proto, err := load.ProtocolByName(name)
		if err != nil {
			return nil, err
		}
		cfg.Proto = proto
		cfg.Progress = joinProgress(f.progress(), url, cfg.Members+cfg.Publishers)
		return load.NewRooms(ctx, d, mode, cfg)
	})
}

func runFanout(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("fanout", flag.ContinueOnError)
	var f roomFlags
	f.register(fs, 5000, 1, 20)
	fs.IntVar(&f.cfg.Publishers, "publishers", 1, "connections that publish (each in a room, in turn)")
	if err := parse(fs, args); err != nil {
		return err
	}
	return f.run(ctx, "fanout")
}

func runChat(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("chat", flag.ContinueOnError)
	var f roomFlags
	f.register(fs, 1000, 10, 200)
	if err := parse(fs, args); err != nil {
		return err
	}
	f.cfg.EveryonePublishes = true
	return f.run(ctx, "chat")
}

func runIdle(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("idle", flag.ContinueOnError)
	var c common
	c.register(fs, "ws://127.0.0.1:8080/echo", 1)
	cfg := load.IdleConfig{}
	var vsPID int
	fs.IntVar(&cfg.Conns, "conns", 10000, "connections")
	fs.IntVar(&cfg.PID, "pid", 0, "process id of the server at -url, to read its RSS")
	fs.IntVar(&vsPID, "vs-pid", 0, "process id of the server at -vs")
	if err := parse(fs, args); err != nil {
		return err
	}
	cfg.Parallel = c.parallel
	if !flagSet(fs, "duration") {
		c.duration = 5 * time.Second // time for the server to settle before its RSS is read
	}
	return c.sequential(ctx, func(ctx context.Context, d *load.Dialer, url string, vs bool) (load.Load, error) {
		cfg := cfg
		cfg.URL = url
		if vs {
			cfg.PID = vsPID
		}
		cfg.Progress = joinProgress(c.progress(), url, cfg.Conns)
		return load.NewIdle(ctx, d, cfg)
	})
}

// flagSet reports whether the flag called name was given.
func flagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

// joinProgress prints every tenth of the connections as they open.
func joinProgress(w io.Writer, url string, total int) func(int) {
	if w == nil || total < 1000 {
		return nil
	}
	step := total / 10
	return func(n int) {
		if n%step == 0 || n == total {
			fmt.Fprintf(w, "  %s: %d/%d connected\n", url, n, total)
		}
	}
}

func runBaseline(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("baseline", flag.ContinueOnError)
	listen := fs.String("listen", "127.0.0.1:9090", "address to serve on")
	if err := parse(fs, args); err != nil {
		return err
	}
	if _, err := rlimit.RaiseOpenFiles(); err != nil {
		fmt.Fprintln(os.Stderr, "warning:", err)
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	srv := &http.Server{Handler: baseline.Mux()}
	go func() {
		<-ctx.Done()
		srv.Close()
	}()
	fmt.Fprintf(os.Stderr, "baseline (pid %d) serving ws://%s/echo and ws://%s/room?room=NAME\n", os.Getpid(), ln.Addr(), ln.Addr())
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
