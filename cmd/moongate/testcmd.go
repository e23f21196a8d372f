package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"regexp"

	"github.com/moongate/moongate/gateway/config"
	"github.com/moongate/moongate/scripting"
	"github.com/moongate/moongate/scripting/luatest"
)

// testCommand runs the *_test.lua files beside the config's services (or
// those the arguments name) with scripting/luatest, printing as `go test`
// does. Databases are stand-ins, fresh for each test (see standIns).
func testCommand(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("moongate test", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", defaultConfig, "config whose endpoints the tests run")
	run := fs.String("run", "", "run only the tests whose names match this regular expression")
	verbose := fs.Bool("v", false, "report every test and its log, not only the failures")
	timeout := fs.Duration("timeout", luatest.DefaultTimeout, "fail a test that takes longer than this (real time)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: moongate test [-config FILE] [-run PATTERN] [-v] [-timeout D] [PATH...]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	var pattern *regexp.Regexp
	if *run != "" {
		var err error
		if pattern, err = regexp.Compile(*run); err != nil {
			fmt.Fprintf(stderr, "moongate test: -run: %v\n", err)
			return 2
		}
	}
	cfg, err := config.Load(*path)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	files, err := luatest.Find(cfg, fs.Args())
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	if len(files) == 0 {
		fmt.Fprintf(stdout, "no test files (*_test.lua beside the scripts of %s)\n", cfg.File)
		return 0
	}
	ok := luatest.Run(files, luatest.Options{Run: pattern, Verbose: *verbose, Out: stdout, Timeout: *timeout,
		Databases: func() (scripting.Databases, func(), error) {
			dbs, err := openStandIns(context.Background(), cfg, true)
			if err != nil {
				return nil, nil, err
			}
			return dbs, dbs.Close, nil
		}})
	if !ok {
		return 1
	}
	return 0
}
