package main

import (
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/moongate/moongate/gateway/config"
	"github.com/moongate/moongate/scripting"
)

// checkCommand validates a config and every script it names without
// serving. It prints each problem as file:line: message and exits 1 when
// there is any.
func checkCommand(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("moongate check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", defaultConfig, "config file to check")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	cfg, err := config.Load(*path)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	failed := false
	for _, ep := range cfg.Endpoints {
		if err := scripting.Check(ep); err != nil {
			failed = true
			var se *scripting.ScriptError
			if !errors.As(err, &se) {
				err = fmt.Errorf("endpoint %s: %w", ep.Path, err)
			}
			fmt.Fprintln(stderr, err)
		}
	}
	if failed {
		return 1
	}
	fmt.Fprintf(stdout, "%s: ok (%d endpoints)\n", cfg.File, len(cfg.Endpoints))
	return 0
}
