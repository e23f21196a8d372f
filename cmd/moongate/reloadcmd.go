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
	path := fs.String("config", defaultConfig, "config of the running gateway (to find where it listens)")
	addr := fs.String("addr", "", "address of the running gateway (instead of finding it by its config)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	addrs := []string{*addr}
	if *addr == "" {
		cfg, err := config.Load(*path)
		if err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
		// Where the gateway serving this config said it listens (-listen
		// may have overridden the config), else the config's listen.
		addrs = []string{cfg.Listen}
		if recorded := readAddr(cfg.File); recorded != "" && recorded != cfg.Listen {
			addrs = []string{recorded, cfg.Listen}
		}
	}
	resp, err := postReload(addrs)
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
		fmt.Fprintf(stderr, "moongate reload: %s answered %s: %v\n", resp.Request.URL.Host, resp.Status, err)
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

// postReload asks the first of addrs that answers to reload.
func postReload(addrs []string) (*http.Response, error) {
	client := &http.Client{Timeout: 30 * time.Second}
	var err error
	for _, addr := range addrs {
		var resp *http.Response
		if resp, err = client.Post("http://"+addr+"/admin/reload", "application/json", nil); err == nil {
			return resp, nil
		}
	}
	return nil, err
}
