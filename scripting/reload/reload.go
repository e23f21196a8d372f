// Package reload keeps a running gateway's scripts current: it reloads a
// service when its script is saved (watching with fsnotify, debounced so an
// editor's burst of writes or rename-and-replace ends in one reload), on
// SIGHUP, or when asked over the admin endpoint.
package reload

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/moongate/moongate/scripting"
)

// Debounce is how long a script must stay unchanged after an event before
// it is reloaded.
const Debounce = 40 * time.Millisecond

// Manager reloads the services of a running gateway.
type Manager struct {
	log      *slog.Logger
	mu       sync.Mutex
	services map[string]*scripting.Service // endpoint path -> service
	scripts  map[string][]string           // clean script path -> endpoint paths
}

// New returns a manager of services (endpoint path -> service).
func New(services map[string]*scripting.Service, log *slog.Logger) *Manager {
	m := &Manager{log: log, services: services, scripts: make(map[string][]string)}
	for path, s := range services {
		script := filepath.Clean(s.Script())
		m.scripts[script] = append(m.scripts[script], path)
	}
	return m
}

// Result is the outcome of reloading one endpoint's script.
type Result struct {
	Endpoint string `json:"endpoint"`
	Changed  bool   `json:"changed"`
	Version  string `json:"version"`
	Error    string `json:"error,omitempty"`
}

// ReloadAll reloads every service whose script changed.
func (m *Manager) ReloadAll() []Result {
	m.mu.Lock()
	paths := make([]string, 0, len(m.services))
	for p := range m.services {
		paths = append(paths, p)
	}
	m.mu.Unlock()
	slices.Sort(paths)
	out := make([]Result, 0, len(paths))
	for _, p := range paths {
		out = append(out, m.reload(p))
	}
	return out
}

// reload reloads the service of one endpoint.
func (m *Manager) reload(endpoint string) Result {
	m.mu.Lock()
	s := m.services[endpoint]
	m.mu.Unlock()
	changed, err := s.Reload()
	r := Result{Endpoint: endpoint, Changed: changed, Version: s.Status().Version}
	if err != nil {
		r.Error = err.Error()
	}
	return r
}

// Status returns each endpoint's script status.
func (m *Manager) Status() map[string]scripting.Status {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make(map[string]scripting.Status, len(m.services))
	for p, s := range m.services {
		out[p] = s.Status()
	}
	return out
}

// Watch reloads a service whenever its script is written, until ctx is done.
// It watches the scripts' folders, so a save by rename-and-replace is seen
// too; a script that is missing when the quiet period ends is left alone
// until it appears.
func (m *Manager) Watch(ctx context.Context) error {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("watch scripts: %w", err)
	}
	defer w.Close()
	for _, dir := range m.folders() {
		if err := w.Add(dir); err != nil {
			return fmt.Errorf("watch %s: %w", dir, err)
		}
	}
	pending := map[string]bool{}
	quiet := time.NewTimer(time.Hour)
	quiet.Stop()
	for {
		select {
		case ev, ok := <-w.Events:
			if !ok {
				return nil
			}
			if name := filepath.Clean(ev.Name); m.watches(name) {
				pending[name] = true
				quiet.Reset(Debounce)
			}
		case err, ok := <-w.Errors:
			if !ok {
				return nil
			}
			m.log.Warn("watching scripts", "err", err)
		case <-quiet.C:
			m.reloadPending(pending)
		case <-ctx.Done():
			return nil
		}
	}
}

// reloadPending reloads the services of the scripts written since the last
// quiet period, and forgets them.
func (m *Manager) reloadPending(pending map[string]bool) {
	for script := range pending {
		if _, err := os.Stat(script); errors.Is(err, os.ErrNotExist) {
			continue // mid-save: the next event brings it back
		}
		delete(pending, script)
		m.mu.Lock()
		endpoints := slices.Clone(m.scripts[script])
		m.mu.Unlock()
		for _, e := range endpoints {
			m.reload(e)
		}
	}
}

func (m *Manager) watches(name string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	_, ok := m.scripts[name]
	return ok
}

// folders returns the folders holding the scripts.
func (m *Manager) folders() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var dirs []string
	for script := range m.scripts {
		if d := filepath.Dir(script); !slices.Contains(dirs, d) {
			dirs = append(dirs, d)
		}
	}
	return dirs
}
