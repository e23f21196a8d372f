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

// Enabled takes every level: a script's own log lines (log.debug too) are
// shown under its test; the runtime's are shown from warnings up.
func (h handler) Enabled(context.Context, slog.Level) bool { return true }

// Handle keeps a script error apart (see logSink) and a log line as one
// line: "file:line: log info: message key=value ..." for a script's own.
func (h handler) Handle(_ context.Context, r slog.Record) error {
	var fields strings.Builder
	var errText, handlerName, traceback, at string
	show := func(a slog.Attr) bool {
		switch a.Key {
		case "endpoint", "state", "client":
			return true
		case "err":
			errText = a.Value.String()
		case "handler":
			handlerName = a.Value.String()
		case "traceback":
			traceback = a.Value.String()
			return true
		case "at":
			at = a.Value.String()
			return true
		}
		fmt.Fprintf(&fields, " %s=%q", a.Key, a.Value.String())
		return true
	}
	for _, a := range h.attrs {
		show(a)
	}
	r.Attrs(show)
	if r.Message == "script error" {
		msg := errText
		if handlerName != "" {
			msg = "in the " + handlerName + " handler: " + msg
		}
		if traceback != "" {
			msg += "\n" + traceback
		}
		h.sink.mu.Lock()
		defer h.sink.mu.Unlock()
		h.sink.errors = append(h.sink.errors, msg)
		return nil
	}
	if at == "" && r.Level < slog.LevelWarn {
		return nil // the runtime's own news (a script loaded, say)
	}
	line := fmt.Sprintf("service %s: %s%s", strings.ToLower(r.Level.String()), r.Message, fields.String())
	if at != "" {
		line = fmt.Sprintf("%s: log %s: %s%s", at, strings.ToLower(r.Level.String()), r.Message, fields.String())
	}
	h.sink.add(line)
	return nil
}

func (h handler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return handler{sink: h.sink, attrs: append(append([]slog.Attr(nil), h.attrs...), attrs...)}
}

func (h handler) WithGroup(string) slog.Handler { return h }
