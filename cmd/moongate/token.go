package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/moongate/moongate/gateway/auth"
	"github.com/moongate/moongate/gateway/config"
)

// tokenCommand prints a signed token for trying sign-in:
// moongate token -sub alice -name Alice -ttl 1h
func tokenCommand(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("moongate token", flag.ContinueOnError)
	fs.SetOutput(stderr)
	sub := fs.String("sub", "", "the user id (the token's sub claim); required")
	name := fs.String("name", "", "the display name (the token's name claim)")
	ttl := fs.Duration("ttl", time.Hour, "how long the token is valid")
	secretEnv := fs.String("secret-env", config.DefaultSecretEnv, "environment variable holding the secret")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *sub == "" {
		fmt.Fprintln(stderr, "moongate token: -sub is required")
		return 2
	}
	secret := os.Getenv(*secretEnv)
	if secret == "" {
		fmt.Fprintf(stderr, "moongate token: %s is not set; set it to the secret the gateway uses, e.g.\n  export %s=$(head -c 32 /dev/urandom | base64)\n", *secretEnv, *secretEnv)
		return 1
	}
	token, err := auth.Sign([]byte(secret), *sub, *name, *ttl, nil)
	if err != nil {
		fmt.Fprintf(stderr, "moongate token: %v\n", err)
		return 1
	}
	fmt.Fprintln(stdout, token)
	return 0
}
