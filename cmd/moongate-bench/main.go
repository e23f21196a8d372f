// Command moongate-bench loads a WebSocket server and measures it: echo
// round trips, room fan-out, the chat protocol and idle connections. With
// -vs it runs the same load against a second server, interleaved A B A B,
// and prints the ratio; `moongate-bench baseline` serves the bare gobwas/ws
// echo and room broadcast that Moongate's figures are compared with.
//
// Usage:
//
//	moongate-bench echo     [flags]   N connections echoing messages
//	moongate-bench fanout   [flags]   members in rooms, publishers at a rate
//	moongate-bench chat     [flags]   the chat protocol: everyone says
//	moongate-bench idle     [flags]   N idle connections and the server's RSS
//	moongate-bench baseline [flags]   serve the bare gobwas/ws baseline
//
// Run `moongate-bench <mode> -h` for a mode's flags; docs/performance.md
// shows the runs behind Moongate's published figures.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "moongate-bench:", err)
		os.Exit(1)
	}
}

// modes maps each mode to the function that runs it with its flags.
var modes = map[string]func(ctx context.Context, args []string) error{
	"echo":     runEcho,
	"fanout":   runFanout,
	"chat":     runChat,
	"idle":     runIdle,
	"baseline": runBaseline,
}

func run(ctx context.Context, args []string) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "help" || args[0] == "--help" {
		fmt.Fprint(os.Stderr, usage)
		return nil
	}
	mode, ok := modes[args[0]]
	if !ok {
		return fmt.Errorf("unknown mode %q\n%s", args[0], usage)
	}
	return mode(ctx, args[1:])
}

const usage = `usage: moongate-bench <mode> [flags]

modes:
  echo       N connections echoing messages (-conns, -size, -inflight, -rate)
  fanout     members in rooms, publishers at a rate (-members, -rooms, -publishers, -rate)
  chat       the chat protocol: every member says at a rate
  idle       N idle connections; the server's RSS with -pid
  baseline   serve the bare gobwas/ws echo (/echo) and room broadcast (/room)

Every load mode takes -url, -vs (a second server, run interleaved, ratio
printed), -duration, -rounds and -json. See docs/performance.md.
`
