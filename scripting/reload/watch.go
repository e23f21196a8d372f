package reload

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/fsnotify/fsnotify"
)

// Debounce is how long a file must stay unchanged after an event before it
// is reloaded.
const Debounce = 40 * time.Millisecond

// Watch reloads what is saved until ctx is done: the config file and the
// scripts. It watches their folders, so a save by rename-and-replace is
// seen too; a file missing when the quiet period ends is left alone until
// it appears.
func (m *Manager) Watch(ctx context.Context) error {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("watch: %w", err)
	}
	defer w.Close()
	folders := map[string]bool{}
	if err := m.watchFolders(w, folders); err != nil {
		return err
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
			if name := filepath.Clean(ev.Name); m.isWatched(name) {
				pending[name] = true
				quiet.Reset(Debounce)
			}
		case err, ok := <-w.Errors:
			if !ok {
				return nil
			}
			m.log.Warn("watching files", "err", err)
		case <-quiet.C:
			m.reloadPending(pending)
			if err := m.watchFolders(w, folders); err != nil {
				m.log.Warn("watching files", "err", err)
			}
		case <-ctx.Done():
			return nil
		}
	}
}

// watchFolders adds the folders of the watched files not yet watched.
func (m *Manager) watchFolders(w *fsnotify.Watcher, folders map[string]bool) error {
	cfg, scripts := m.watched()
	dirs := []string{filepath.Dir(cfg)}
	for script := range scripts {
		dirs = append(dirs, filepath.Dir(script))
	}
	for _, d := range dirs {
		if folders[d] {
			continue
		}
		if err := w.Add(d); err != nil {
			return fmt.Errorf("watch %s: %w", d, err)
		}
		folders[d] = true
	}
	return nil
}

func (m *Manager) isWatched(name string) bool {
	cfg, scripts := m.watched()
	_, ok := scripts[name]
	return ok || name == cfg
}

// reloadPending reloads what was written since the last quiet period: the
// config first (it may add, remove or change endpoints), then the scripts.
func (m *Manager) reloadPending(pending map[string]bool) {
	cfg, scripts := m.watched()
	if pending[cfg] && exists(cfg) {
		delete(pending, cfg)
		m.ReloadConfig()
	}
	for script := range pending {
		if !exists(script) {
			continue // mid-save: the next event brings it back
		}
		delete(pending, script)
		for _, endpoint := range scripts[script] {
			m.reloadScript(endpoint)
		}
	}
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return !errors.Is(err, os.ErrNotExist)
}
