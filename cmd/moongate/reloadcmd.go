package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/moongate/moongate/gateway/config"
)

// reloadCommand asks a running gateway to apply its config file and reload
// its scripts, through its admin endpoint on the loopback address it
// listens on.
func reloadCommand(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("moongate reload", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", defaultConfig, "config of the running gateway (for its listen address)")
	addr := fs.String("addr", "", "address of the running gateway (overrides the config's listen)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *addr == "" {
		cfg, err := config.Load(*path)
		if err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
		*addr = cfg.Listen
	}
	client := &http.Client{Timeout: 30 * time.Second}
	resp, err := client.Post("http://"+*addr+"/admin/reload", "application/json", nil)
	if err != nil {
		fmt.Fprintf(stderr, "moongate reload: %v\n", err)
		return 1
	}
	defer resp.Body.Close()
	var body struct {
		ConfigError string `json:"config_error"`
		Results     []struct {
			Endpoint, Version, Error string
			Changed                  bool
		}
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		fmt.Fprintf(stderr, "moongate reload: %s answered %s: %v\n", *addr, resp.Status, err)
		return 1
	}
	failed := body.ConfigError != ""
	if failed {
		fmt.Fprintf(stderr, "config refused, the running one stays:\n%s\n", body.ConfigError)
	}
	for _, r := range body.Results {
		switch {
		case r.Error != "":
			failed = true
			fmt.Fprintf(stderr, "%s: %s (still running %s)\n", r.Endpoint, r.Error, r.Version)
		case r.Changed:
			fmt.Fprintf(stdout, "%s: reloaded, now %s\n", r.Endpoint, r.Version)
		default:
			fmt.Fprintf(stdout, "%s: unchanged (%s)\n", r.Endpoint, r.Version)
		}
	}
	if failed {
		return 1
	}
	return 0
}
