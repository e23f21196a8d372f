// Command moongate runs the Moongate WebSocket gateway: a YAML config maps
// URL paths to Lua scripts that implement WebSocket services.
//
// Usage:
//
//	moongate [run] [-config FILE] [-listen ADDR] [-log-format text|json] [-log-level LEVEL] [-watch=false]
//	moongate check [-config FILE]
//	moongate token -sub ID [-name NAME] [-ttl 1h] [-secret-env VAR]
//	moongate reload [-config FILE | -addr HOST:PORT]
//	moongate test [-config FILE] [-run PATTERN] [-v] [PATH...]
package main

import (
	"context"
	"fmt"
	"io"
	"os"
)

// defaultConfig is served when no -config is given.
const defaultConfig = "config.example.yaml"

func main() {
	os.Exit(dispatch(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}

// dispatch runs the subcommand named by args[0] (run when there is none)
// and returns the process exit code.
func dispatch(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cmd, rest := "run", args
	if len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		cmd, rest = args[0], args[1:]
	}
	switch cmd {
	case "run":
		return runCommand(ctx, rest, stderr)
	case "check":
		return checkCommand(rest, stdout, stderr)
	case "token":
		return tokenCommand(rest, stdout, stderr)
	case "reload":
		return reloadCommand(rest, stdout, stderr)
	case "test":
		return testCommand(rest, stdout, stderr)
	case "help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "moongate: unknown command %q\n\n%s", cmd, usage)
		return 2
	}
}

const usage = `Usage:
  moongate [run] [flags]   serve the config (default: ` + defaultConfig + `)
  moongate check [flags]   validate the config and compile every script, then exit
  moongate token [flags]   print a signed sign-in token (-sub alice -name Alice -ttl 1h)
  moongate reload [flags]  make the running gateway reload its scripts (-config or -addr)
  moongate test [flags]    run the *_test.lua files beside the scripts (-run PATTERN, -v)
  moongate help            show this help

Run "moongate run -h" or "moongate check -h" for the flags of each command.
`
