package luatest

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
)

// logSink collects what a test reports besides its failure: its t:log
// lines, the service's warnings and errors, and apart from them the
// script errors, which fail the test unless it takes them
// (t:script_errors()).
type logSink struct {
	mu     sync.Mutex
	lines  []string
	errors []string
}

func (s *logSink) add(line string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lines = append(s.lines, line)
}

// takeErrors returns the script errors not taken yet.
func (s *logSink) takeErrors() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := s.errors
	s.errors = nil
	return out
}

// take returns the lines so far.
func (s *logSink) take() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := s.lines
	s.lines = nil
	return out
}

// handler is the slog.Handler the service under test logs to.
type handler struct {
	sink  *logSink
	attrs []slog.Attr
}

func (h handler) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelWarn }

func (h handler) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	fmt.Fprintf(&b, "service %s: %s", strings.ToLower(r.Level.String()), r.Message)
	var errText, handlerName string
	show := func(a slog.Attr) bool {
		switch a.Key {
		case "endpoint", "state", "client":
			return true
		case "err":
			errText = a.Value.String()
		case "handler":
			handlerName = a.Value.String()
		}
		fmt.Fprintf(&b, " %s=%q", a.Key, a.Value.String())
		return true
	}
	for _, a := range h.attrs {
		show(a)
	}
	r.Attrs(show)
	h.sink.mu.Lock()
	defer h.sink.mu.Unlock()
	if r.Message == "script error" {
		msg := errText
		if handlerName != "" {
			msg = "in the " + handlerName + " handler: " + msg
		}
		h.sink.errors = append(h.sink.errors, msg)
		return nil
	}
	h.sink.lines = append(h.sink.lines, b.String())
	return nil
}

func (h handler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return handler{sink: h.sink, attrs: append(append([]slog.Attr(nil), h.attrs...), attrs...)}
}

func (h handler) WithGroup(string) slog.Handler { return h }
