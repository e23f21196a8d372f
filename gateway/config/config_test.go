package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// workdir makes a folder with a script and a static folder, and returns it.
func workdir(t *testing.T) string {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "echo.lua"), []byte("return {}"), 0o644)
	os.Mkdir(filepath.Join(dir, "www"), 0o755)
	return dir
}

func TestFullConfig(t *testing.T) {
	dir := workdir(t)
	file := filepath.Join(dir, "moongate.yaml")
	cfg, err := Parse(file, []byte(`listen: 0.0.0.0:9000
shutdown_timeout: 3s
endpoints:
  - path: /echo
    script: echo.lua
    states: 3
    max_message_bytes: 1MiB
    send_queue: 16
    send_queue_bytes: 64KiB
    on_full: drop
    ping_interval: 5s
    idle_timeout: 20s
    message_timeout: 3s
    origins: ["https://example.com", "*"]
    budget: 50ms
    inbox: 10
    inbox_bytes: 2MiB
    handler_memory: 64MiB
    compression: true
    compression_context_takeover: true
    options:
      greeting: hi
      n: 3
      list: [1, two]
static:
  - prefix: /
    dir: www
limits: {max_connections: 500, max_per_ip: 20, handshake_timeout: 2s, http_idle_timeout: 4s, max_header_bytes: 8KiB}
tls: {cert: echo.lua, key: echo.lua}
pprof: true
allowed_hosts: [gw.example]
metrics: {expose: public}
`))
	if err != nil {
		t.Fatal(err)
	}
	want := &Config{
		File: file, Listen: "0.0.0.0:9000", ShutdownTimeout: 3 * time.Second,
		Endpoints: []Endpoint{{
			Line: 4, Path: "/echo", Script: filepath.Join(dir, "echo.lua"), States: 3, MaxMessageBytes: 1 << 20,
			SendQueue: 16, SendQueueBytes: 64 << 10, OnFull: OnFullDrop, PingInterval: 5 * time.Second, IdleTimeout: 20 * time.Second,
			MessageTimeout: 3 * time.Second, Origins: []string{"https://example.com", "*"}, Budget: 50 * time.Millisecond, Inbox: 10, InboxBytes: 2 << 20, HandlerMemory: 64 << 20,
			Compression: true, CompressionContextTakeover: true,
			Options: map[string]any{"greeting": "hi", "n": 3, "list": []any{1, "two"}},
			HTTP:    HTTP{Timeout: DefaultHTTPTimeout, MaxResponseBytes: DefaultMaxResponseBytes},
		}},
		Static: []Static{{Line: 26, Prefix: "/", Dir: filepath.Join(dir, "www")}},
		Limits: Limits{MaxConnections: 500, MaxPerIP: 20, HandshakeTimeout: 2 * time.Second,
			HTTPIdleTimeout: 4 * time.Second, MaxHeaderBytes: 8 << 10},
		TLS:          &TLS{Cert: filepath.Join(dir, "echo.lua"), Key: filepath.Join(dir, "echo.lua")},
		Pprof:        true,
		AllowedHosts: []string{"gw.example"},
		Metrics:      Metrics{Expose: ExposePublic},
	}
	if !reflect.DeepEqual(cfg, want) {
		t.Errorf("got  %+v\nwant %+v", cfg, want)
	}
}

func TestDefaults(t *testing.T) {
	dir := workdir(t)
	cfg, err := Parse(filepath.Join(dir, "c.yaml"), []byte("endpoints: [{path: /echo, script: echo.lua}]\n"))
	if err != nil {
		t.Fatal(err)
	}
	ep := cfg.Endpoints[0]
	if cfg.Listen != DefaultListen || cfg.ShutdownTimeout != DefaultShutdownTimeout || cfg.TLS != nil ||
		cfg.Limits != (Limits{MaxConnections: DefaultMaxConnections, HandshakeTimeout: DefaultHandshakeTimeout,
			HTTPIdleTimeout: DefaultHTTPIdleTimeout, MaxHeaderBytes: DefaultMaxHeaderBytes}) ||
		cfg.Metrics.Expose != ExposeLoopback || ep.MessageTimeout != DefaultMessageTimeout || ep.States != AutoStates() ||
		ep.MaxMessageBytes != DefaultMaxMessageBytes || ep.SendQueue != DefaultSendQueue || ep.SendQueueBytes != DefaultSendQueueBytes || ep.OnFull != OnFullClose ||
		ep.PingInterval != DefaultPingInterval || ep.IdleTimeout != DefaultIdleTimeout || ep.Budget != DefaultBudget ||
		ep.Inbox != DefaultInbox || ep.InboxBytes != DefaultInboxBytes || ep.HandlerMemory != DefaultHandlerMemory || ep.Options == nil || len(ep.Origins) != 0 {
		t.Errorf("defaults not applied: %+v %+v", cfg, ep)
	}
}

func TestErrorsNameFileLineAndField(t *testing.T) {
	const head = "endpoints:\n  - path: /echo\n    script: echo.lua\n"
	tests := []struct {
		name, yaml, want string
	}{
		{"tab in an endpoint's fields", "endpoints:\n  - path: /echo\n\tscript: echo.lua\n",
			`c.yaml:3: found a tab character that violates indentation (a tab: YAML indents with spaces only)`},
		{"tab before a list item", "endpoints:\n\t- path: /echo\n",
			`c.yaml:2: found character that cannot start any token (a tab: YAML indents with spaces only)`},
		{"unknown top-level field", "listn: x\n" + head,
			`c.yaml:1: unknown field "listn" (did you mean "listen"?)`},
		{"unknown endpoint field", head + "    on_ful: drop\n",
			`c.yaml:4: endpoints[0]: unknown field "on_ful" (did you mean "on_full"?)`},
		{"unknown field, nothing close", head + "    colour: red\n",
			`c.yaml:4: endpoints[0]: unknown field "colour"`},
		{"states wrong type", head + "    states: many\n",
			`c.yaml:4: endpoints[0].states: must be a whole number or "auto", got "many"`},
		{"states out of range", head + "    states: 0\n",
			`c.yaml:4: endpoints[0].states: must be between 1 and 1024, got 0`},
		{"send_queue wrong type", head + "    send_queue: [1]\n",
			`c.yaml:4: endpoints[0].send_queue: must be a whole number, got a list`},
		{"duration without unit", head + "    ping_interval: 30\n",
			`c.yaml:4: endpoints[0].ping_interval: must be a duration with a unit, like "30s", got 30`},
		{"bad duration", head + "    ping_interval: soon\n",
			`c.yaml:4: endpoints[0].ping_interval: must be a duration like "30s" or "250ms", got "soon"`},
		{"bad on_full", head + "    on_full: clsoe\n",
			`c.yaml:4: endpoints[0].on_full: must be "close" or "drop", got "clsoe"`},
		{"bad size", head + "    max_message_bytes: lots\n",
			`c.yaml:4: endpoints[0].max_message_bytes: must be a size from 1 bytes to 1GiB, like 65536, "64KiB" or "1MiB", got "lots"`},
		{"path without slash", "endpoints:\n  - path: echo\n    script: echo.lua\n",
			`c.yaml:2: endpoints[0].path: must start with "/", got "echo"`},
		{"duplicate path", head + "  - path: /echo\n    script: echo.lua\n",
			`c.yaml:4: endpoints[1].path: /echo is used twice`},
		{"reserved path", "endpoints:\n  - path: /metrics\n    script: echo.lua\n",
			`c.yaml:2: endpoints[0].path: /metrics is served by the gateway itself`},
		{"missing script", "endpoints:\n  - path: /echo\n",
			`c.yaml:2: endpoints[0].script: missing: every endpoint needs a script`},
		{"script not found", "endpoints:\n  - path: /echo\n    script: nope.lua\n",
			`c.yaml:3: endpoints[0].script: DIR/nope.lua: no such file or folder`},
		{"static dir missing", head + "static:\n  - prefix: /\n    dir: nowhere\n",
			`c.yaml:6: static[0].dir: DIR/nowhere: no such file or folder`},
		{"syntax error", "endpoints:\n  - path: /echo\n    script: x: y\n",
			`c.yaml:3: mapping values are not allowed in this context`},
		{"empty file", "",
			`c.yaml: the file is empty: a config needs at least one endpoint`},
		{"no endpoints", "listen: 127.0.0.1:1\n",
			`c.yaml:1: endpoints: at least one endpoint is needed`},
		{"endpoints not a list", "endpoints: /echo\n",
			"c.yaml:1: endpoints: must be a list\nc.yaml:1: endpoints: at least one endpoint is needed"},
		{"bad listen", "listen: 8080\n" + head,
			`c.yaml:1: listen: must be an address like "127.0.0.1:8080", got 8080`},
		{"idle not above ping", head + "    ping_interval: 30s\n    idle_timeout: 30s\n",
			`c.yaml:2: endpoints[0].idle_timeout: must be longer than ping_interval (30s), or a live client would be cut off between pings`},
		{"field given twice", head + "    states: 1\n    states: 2\n",
			`c.yaml:5: endpoints[0].states: given twice`},
		{"options not a mapping", head + "    options: [1]\n",
			`c.yaml:4: endpoints[0].options: must be a mapping, got a list`},
		{"several errors in line order", "endpoints:\n  - path: echo\n    script: echo.lua\n    on_full: maybe\n    states: x\n",
			"c.yaml:2: endpoints[0].path: must start with \"/\", got \"echo\"\n" +
				"c.yaml:4: endpoints[0].on_full: must be \"close\" or \"drop\", got \"maybe\"\n" +
				"c.yaml:5: endpoints[0].states: must be a whole number or \"auto\", got \"x\""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := workdir(t)
			_, err := Parse(filepath.Join(dir, "c.yaml"), []byte(tt.yaml))
			if err == nil {
				t.Fatal("no error")
			}
			got := strings.ReplaceAll(strings.ReplaceAll(err.Error(), filepath.Join(dir, "c.yaml"), "c.yaml"), dir, "DIR")
			if got != tt.want {
				t.Errorf("got:\n%s\nwant:\n%s", got, tt.want)
			}
		})
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "none.yaml"))
	if err == nil || !strings.HasPrefix(err.Error(), "read config: ") {
		t.Errorf("got %v", err)
	}
}

// TestDocumentedExampleIsValid parses the complete example of docs/config.md.
func TestDocumentedExampleIsValid(t *testing.T) {
	doc, err := os.ReadFile("../../docs/config.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, _ := strings.Cut(string(doc), "```yaml\n")
	example, _, _ := strings.Cut(rest, "```")
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "scripts"), 0o755)
	os.Mkdir(filepath.Join(dir, "www"), 0o755)
	os.WriteFile(filepath.Join(dir, "scripts", "echo.lua"), []byte("return {}"), 0o644)
	if _, err := Parse(filepath.Join(dir, "c.yaml"), []byte(example)); err != nil {
		t.Errorf("the documented example does not load:\n%v", err)
	}
}

func TestEqualIgnoresWhereThingsStandInTheFile(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"a.lua", "b.lua"} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte("return {}"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	parse := func(src string) *Config {
		t.Helper()
		cfg, err := Parse(filepath.Join(dir, "config.yaml"), []byte(src))
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	base := parse("endpoints:\n  - path: /a\n    script: a.lua\n  - path: /b\n    script: b.lua\n")
	moved := parse("# a comment\n\nendpoints:\n  # another\n  - path: /a\n    script: a.lua\n  - path: /b\n    script: b.lua\n")
	changed := parse("endpoints:\n  - path: /a\n    script: a.lua\n    budget: 1s\n  - path: /b\n    script: b.lua\n")
	if !base.Equal(moved) || !base.Endpoints[0].Equal(moved.Endpoints[0]) {
		t.Error("a comment above the endpoints made the config differ")
	}
	if base.Endpoints[0].Line == moved.Endpoints[0].Line {
		t.Fatal("the test's comment did not move the endpoint")
	}
	if base.Equal(changed) || base.Endpoints[0].Equal(changed.Endpoints[0]) {
		t.Error("a changed budget did not make the config differ")
	}
	if !base.Endpoints[1].Equal(changed.Endpoints[1]) {
		t.Error("an endpoint that did not change differs")
	}
}
