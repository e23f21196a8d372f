package config

import (
	"fmt"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/moongate/moongate/gateway/safefile"
	"gopkg.in/yaml.v3"
)

// MaxFileBytes bounds the size of a config file.
const MaxFileBytes = 1 << 20

// Load reads and validates the config file at path. Problems in the file
// come back as Errors; a file that cannot be read (missing, not a regular
// file, over MaxFileBytes), as a wrapped error.
func Load(path string) (*Config, error) {
	data, err := safefile.Read(path, MaxFileBytes)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	return Parse(path, data)
}

// Parse validates data as the contents of file. Relative paths in it are
// resolved against file's folder.
func Parse(file string, data []byte) (*Config, error) {
	d := &decoder{file: file, dir: filepath.Dir(file), data: data}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		d.syntaxError(err)
		return nil, d.errs
	}
	cfg := d.config(&doc)
	if len(d.errs) > 0 {
		return nil, d.errs.sorted()
	}
	return cfg, nil
}

// decoder walks the YAML node tree, collecting every problem it finds.
type decoder struct {
	file   string
	dir    string
	data   []byte // the file's content, for error messages
	errs   Errors
	dbRefs []dbRef // databases endpoints name, checked once the whole file is read
}

func (d *decoder) fail(n *yaml.Node, field, format string, args ...any) {
	line := 0
	if n != nil {
		line = n.Line
	}
	d.errs = append(d.errs, &Error{File: d.file, Line: line, Field: field, Msg: fmt.Sprintf(format, args...)})
}

var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// syntaxError reports a YAML parse error at its line.
func (d *decoder) syntaxError(err error) {
	msg := err.Error()
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		text := m[2]
		if tab := d.tabNear(line); tab > 0 {
			line, text = tab, text+" (a tab: YAML indents with spaces only)"
		}
		d.errs = append(d.errs, &Error{File: d.file, Line: line, Msg: text})
		return
	}
	d.errs = append(d.errs, &Error{File: d.file, Msg: strings.TrimPrefix(msg, "yaml: ")})
}

// tabNear returns the line, the one YAML names or the next (YAML may name
// the line before the tab), whose indentation holds a tab; 0 if neither.
func (d *decoder) tabNear(line int) int {
	lines := strings.Split(string(d.data), "\n")
	for l := line; l >= 1 && l <= len(lines) && l <= line+1; l++ {
		text := lines[l-1]
		if indent := text[:len(text)-len(strings.TrimLeft(text, " \t"))]; strings.Contains(indent, "\t") {
			return l
		}
	}
	return 0
}

// fields decodes a mapping node: each known key's value goes to its
// handler; unknown and repeated keys are errors. It returns the keys seen.
func (d *decoder) fields(n *yaml.Node, path string, handlers map[string]func(v *yaml.Node, field string)) map[string]bool {
	seen := map[string]bool{}
	if n.Kind != yaml.MappingNode {
		d.fail(n, path, "must be a mapping of fields")
		return seen
	}
	known := make([]string, 0, len(handlers))
	for k := range handlers {
		known = append(known, k)
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		key, val := n.Content[i], n.Content[i+1]
		field := join(path, key.Value)
		h, ok := handlers[key.Value]
		switch {
		case !ok:
			msg := fmt.Sprintf("unknown field %q", key.Value)
			if s := Suggest(key.Value, known); s != "" {
				msg += fmt.Sprintf(" (did you mean %q?)", s)
			}
			d.fail(key, path, "%s", msg)
		case seen[key.Value]:
			d.fail(key, field, "given twice")
		default:
			seen[key.Value] = true
			h(val, field)
		}
	}
	return seen
}

func join(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

// config decodes the document.
func (d *decoder) config(doc *yaml.Node) *Config {
	cfg := &Config{File: d.file, Listen: DefaultListen, ShutdownTimeout: DefaultShutdownTimeout,
		Limits: Limits{MaxConnections: DefaultMaxConnections, HandshakeTimeout: DefaultHandshakeTimeout,
			HTTPIdleTimeout: DefaultHTTPIdleTimeout, MaxHeaderBytes: DefaultMaxHeaderBytes},
		Metrics: Metrics{Expose: DefaultExpose}}
	if doc.Kind == 0 || len(doc.Content) == 0 {
		d.fail(nil, "", "the file is empty: a config needs at least one endpoint")
		return cfg
	}
	root := doc.Content[0]
	var endpointsNode *yaml.Node
	d.fields(root, "", map[string]func(*yaml.Node, string){
		"listen": func(v *yaml.Node, f string) { cfg.Listen = d.hostPort(v, f) },
		"shutdown_timeout": func(v *yaml.Node, f string) {
			cfg.ShutdownTimeout = d.duration(v, f, 0, 1<<62)
		},
		"endpoints": func(v *yaml.Node, f string) {
			endpointsNode = v
			d.each(v, f, func(item *yaml.Node, f string) { cfg.Endpoints = append(cfg.Endpoints, d.endpoint(item, f)) })
		},
		"static": func(v *yaml.Node, f string) {
			d.each(v, f, func(item *yaml.Node, f string) { cfg.Static = append(cfg.Static, d.static(item, f)) })
		},
		"limits":        func(v *yaml.Node, f string) { d.limits(v, f, &cfg.Limits) },
		"tls":           func(v *yaml.Node, f string) { cfg.TLS = d.tls(v, f) },
		"pprof":         func(v *yaml.Node, f string) { cfg.Pprof = d.boolean(v, f) },
		"allowed_hosts": func(v *yaml.Node, f string) { cfg.AllowedHosts = d.strings(v, f) },
		"metrics":       func(v *yaml.Node, f string) { d.metrics(v, f, &cfg.Metrics) },
		"databases":     func(v *yaml.Node, f string) { cfg.Databases = d.databases(v, f) },
		"cluster":       func(v *yaml.Node, f string) { cfg.Cluster = d.cluster(v, f) },
	})
	if len(cfg.Endpoints) == 0 && root.Kind == yaml.MappingNode {
		n := endpointsNode
		if n == nil {
			n = root
		}
		d.fail(n, "endpoints", "at least one endpoint is needed")
	}
	d.checkPaths(cfg)
	d.checkDatabaseRefs(cfg)
	return cfg
}

// each decodes every item of a sequence node.
func (d *decoder) each(n *yaml.Node, path string, decode func(item *yaml.Node, field string)) {
	if n.Kind != yaml.SequenceNode {
		d.fail(n, path, "must be a list")
		return
	}
	for i, item := range n.Content {
		decode(item, fmt.Sprintf("%s[%d]", path, i))
	}
}

// endpoint decodes one item of `endpoints`.
func (d *decoder) endpoint(n *yaml.Node, path string) Endpoint {
	ep := defaultEndpoint()
	ep.Line = n.Line
	seen := d.fields(n, path, map[string]func(*yaml.Node, string){
		"path":              func(v *yaml.Node, f string) { ep.Path = d.urlPath(v, f) },
		"script":            func(v *yaml.Node, f string) { ep.Script = d.existingPath(v, f, false) },
		"states":            func(v *yaml.Node, f string) { ep.States = d.states(v, f) },
		"max_message_bytes": func(v *yaml.Node, f string) { ep.MaxMessageBytes = d.size(v, f, 1, 1<<30) },
		"send_queue":        func(v *yaml.Node, f string) { ep.SendQueue = int(d.integer(v, f, 1, 1_000_000)) },
		"send_queue_bytes":  func(v *yaml.Node, f string) { ep.SendQueueBytes = d.size(v, f, 1, 1<<40) },
		"on_full":           func(v *yaml.Node, f string) { ep.OnFull = d.onFull(v, f) },
		"ping_interval":     func(v *yaml.Node, f string) { ep.PingInterval = d.duration(v, f, 0, 1<<62) },
		"idle_timeout":      func(v *yaml.Node, f string) { ep.IdleTimeout = d.duration(v, f, 1, 1<<62) },
		"message_timeout":   func(v *yaml.Node, f string) { ep.MessageTimeout = d.duration(v, f, msec, time.Hour) },
		"origins":           func(v *yaml.Node, f string) { ep.Origins = d.strings(v, f) },
		"subprotocols":      func(v *yaml.Node, f string) { ep.Subprotocols = d.strings(v, f) },
		"compression":       func(v *yaml.Node, f string) { ep.Compression = d.boolean(v, f) },
		"compression_context_takeover": func(v *yaml.Node, f string) {
			ep.CompressionContextTakeover = d.boolean(v, f)
		},
		"budget":         func(v *yaml.Node, f string) { ep.Budget = d.duration(v, f, msec, 60*sec) },
		"inbox":          func(v *yaml.Node, f string) { ep.Inbox = int(d.integer(v, f, 1, 1_000_000)) },
		"inbox_bytes":    func(v *yaml.Node, f string) { ep.InboxBytes = d.size(v, f, 1, 1<<40) },
		"handler_memory": func(v *yaml.Node, f string) { ep.HandlerMemory = d.size(v, f, 0, 1<<40) },
		"options":        func(v *yaml.Node, f string) { ep.Options = d.options(v, f) },
		"auth":           func(v *yaml.Node, f string) { ep.Auth = d.auth(v, f) },
		"databases":      func(v *yaml.Node, f string) { ep.Databases = d.databaseRefs(v, f) },
		"http":           func(v *yaml.Node, f string) { d.http(v, f, &ep.HTTP) },
	})
	if n.Kind == yaml.MappingNode {
		for _, required := range []string{"path", "script"} {
			if !seen[required] {
				d.fail(n, join(path, required), "missing: every endpoint needs a %s", required)
			}
		}
	}
	if ep.PingInterval > 0 && ep.IdleTimeout <= ep.PingInterval {
		d.fail(n, join(path, "idle_timeout"), "must be longer than ping_interval (%s), or a live client would be cut off between pings", ep.PingInterval)
	}
	return ep
}

// static decodes one item of `static`.
func (d *decoder) static(n *yaml.Node, path string) Static {
	st := Static{Line: n.Line}
	seen := d.fields(n, path, map[string]func(*yaml.Node, string){
		"prefix": func(v *yaml.Node, f string) { st.Prefix = d.urlPath(v, f) },
		"dir":    func(v *yaml.Node, f string) { st.Dir = d.existingPath(v, f, true) },
	})
	if n.Kind == yaml.MappingNode {
		for _, required := range []string{"prefix", "dir"} {
			if !seen[required] {
				d.fail(n, join(path, required), "missing: every static entry needs a %s", required)
			}
		}
	}
	return st
}

// limits decodes the `limits` mapping into l.
func (d *decoder) limits(n *yaml.Node, path string, l *Limits) {
	d.fields(n, path, map[string]func(*yaml.Node, string){
		"max_connections":   func(v *yaml.Node, f string) { l.MaxConnections = int(d.integer(v, f, 0, 100_000_000)) },
		"max_per_ip":        func(v *yaml.Node, f string) { l.MaxPerIP = int(d.integer(v, f, 0, 100_000_000)) },
		"handshake_timeout": func(v *yaml.Node, f string) { l.HandshakeTimeout = d.duration(v, f, msec, 10*time.Minute) },
		"http_idle_timeout": func(v *yaml.Node, f string) { l.HTTPIdleTimeout = d.duration(v, f, msec, time.Hour) },
		"max_header_bytes":  func(v *yaml.Node, f string) { l.MaxHeaderBytes = d.size(v, f, 1<<10, 1<<20) },
	})
}

// metrics decodes the `metrics` mapping into m.
func (d *decoder) metrics(n *yaml.Node, path string, m *Metrics) {
	d.fields(n, path, map[string]func(*yaml.Node, string){
		"expose": func(v *yaml.Node, f string) {
			s, ok := d.scalar(v, f, `"public", "loopback" or "off"`, "!!str")
			switch e := Expose(s); {
			case !ok:
			case e == ExposePublic, e == ExposeLoopback, e == ExposeOff:
				m.Expose = e
			default:
				d.fail(v, f, `must be "public", "loopback" or "off", got %q`, s)
			}
		},
	})
}

// tls decodes the `tls` mapping.
func (d *decoder) tls(n *yaml.Node, path string) *TLS {
	t := &TLS{}
	seen := d.fields(n, path, map[string]func(*yaml.Node, string){
		"cert": func(v *yaml.Node, f string) { t.Cert = d.existingPath(v, f, false) },
		"key":  func(v *yaml.Node, f string) { t.Key = d.existingPath(v, f, false) },
	})
	if n.Kind == yaml.MappingNode {
		for _, required := range []string{"cert", "key"} {
			if !seen[required] {
				d.fail(n, join(path, required), "missing: tls needs a cert and a key")
			}
		}
	}
	return t
}

// auth decodes an endpoint's `auth` mapping.
func (d *decoder) auth(n *yaml.Node, path string) *Auth {
	a := &Auth{SecretEnv: DefaultSecretEnv}
	d.fields(n, path, map[string]func(*yaml.Node, string){
		"secret_env": func(v *yaml.Node, f string) { a.SecretEnv = d.str(v, f, "the name of an environment variable") },
		"required":   func(v *yaml.Node, f string) { a.Required = d.boolean(v, f) },
	})
	return a
}

// reservedPaths are served by the gateway itself.
var reservedPaths = map[string]bool{"/healthz": true, "/metrics": true}

// checkPaths reports paths used twice, or reserved by the gateway.
func (d *decoder) checkPaths(cfg *Config) {
	used := map[string]bool{}
	claim := func(p string, line int, field string) {
		switch {
		case p == "":
		case reservedPaths[p]:
			d.errs = append(d.errs, &Error{File: d.file, Line: line, Field: field, Msg: p + " is served by the gateway itself"})
		case used[p]:
			d.errs = append(d.errs, &Error{File: d.file, Line: line, Field: field, Msg: fmt.Sprintf("%s is used twice", p)})
		}
		used[p] = true
	}
	for i, ep := range cfg.Endpoints {
		claim(ep.Path, ep.Line, fmt.Sprintf("endpoints[%d].path", i))
	}
	for i, st := range cfg.Static {
		if st.Prefix != "" {
			claim(strings.TrimSuffix(st.Prefix, "/")+"/", st.Line, fmt.Sprintf("static[%d].prefix", i))
		}
	}
}
