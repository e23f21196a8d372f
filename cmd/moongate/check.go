package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/moongate/moongate/gateway/config"
	"github.com/moongate/moongate/scripting"
)

// checkCommand validates a config and every script it names without
// serving: each script's top level and start handler run in a throwaway
// state, and a function the script returns under a name no event calls is
// flagged ("mesage": did you mean "message"?). Databases are stand-ins
// (see standIns): nothing configured is opened; the start handler of an
// endpoint that uses a PostgreSQL database is not run. It prints each problem as
// file:line: message and exits 1 when there is any.
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
	dbs, err := openStandIns(context.Background(), cfg, false)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	defer dbs.Close()
	failed := false
	for _, ep := range cfg.Endpoints {
		var warnings []string
		if server := serverDatabase(cfg, ep); server != "" {
			fmt.Fprintf(stdout, "endpoint %s: start not run: it uses the PostgreSQL database %q, which check does not connect to\n", ep.Path, server)
			warnings, err = scripting.VetTopLevel(ep)
		} else {
			warnings, err = scripting.Vet(ep, scripting.WithDatabases(dbs))
		}
		for _, w := range warnings {
			failed = true
			fmt.Fprintln(stderr, w)
		}
		if err != nil {
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
