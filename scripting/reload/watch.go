package reload

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/moongate/moongate/gateway/config"
	"github.com/moongate/moongate/gateway/safefile"
	"github.com/moongate/moongate/scripting"
)

// A saved file is judged only once it is stable, so that a file still
// being written (an editor that truncates and writes in place, a slow
// copy) is never compiled half-written, refused as broken, or, worse,
// served because a prefix of it happens to parse:
//
//   - Quiet: no event for any watched file for this long. A writer that
//     pauses for less than this between two pieces of one save is seen as
//     one save.
//   - Settle: the file is then read twice, this far apart; only when both
//     reads hold the same bytes is it judged.
const (
	Quiet  = 250 * time.Millisecond
	Settle = 100 * time.Millisecond
)

// Watch reloads what is saved until ctx is done: the config file, the
// scripts and the modules their running versions loaded (a service is
// reloaded when one of its modules is saved; a module a handler requires
// later is watched from then on). It watches their folders, so a save by
// rename-and-replace is seen too; a file missing when it is looked at is
// left alone until it appears. It is NewWatcher, then Run.
func (m *Manager) Watch(ctx context.Context) error {
	w, err := m.NewWatcher()
	if err != nil {
		return err
	}
	return w.Run(ctx)
}

// Watcher watches a manager's files; a save is seen from the moment
// NewWatcher returns.
type Watcher struct {
	m       *Manager
	fs      *fsnotify.Watcher
	folders map[string]bool
}

// NewWatcher starts watching the folders of the config and the scripts.
// Nothing is reloaded until Run.
func (m *Manager) NewWatcher() (*Watcher, error) {
	fw, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, fmt.Errorf("watch: %w", err)
	}
	w := &Watcher{m: m, fs: fw, folders: map[string]bool{}}
	if _, err := m.watchFolders(fw, w.folders); err != nil {
		fw.Close()
		return nil, err
	}
	return w, nil
}

// Run reloads what is saved until ctx is done, then stops watching.
func (w *Watcher) Run(ctx context.Context) error {
	defer w.fs.Close()
	m := w.m
	pending := map[string][]byte{} // saved files -> their content at the last look (nil: not looked at yet)
	look := time.NewTimer(time.Hour)
	look.Stop()
	for {
		select {
		case ev, ok := <-w.fs.Events:
			if !ok {
				return nil
			}
			if name := filepath.Clean(ev.Name); m.isWatched(name) {
				pending[name] = nil // changed since any look
				look.Reset(Quiet)
			}
		case err, ok := <-w.fs.Errors:
			if !ok {
				return nil
			}
			m.log.Warn("watching files", "err", err)
		case <-look.C:
			if m.lookAtPending(pending) {
				look.Reset(Settle)
			}
			if _, err := m.watchFolders(w.fs, w.folders); err != nil {
				m.log.Warn("watching files", "err", err)
			}
		case <-m.modulesSeen: // a module, perhaps in a folder not watched yet
			added, err := m.watchFolders(w.fs, w.folders)
			if err != nil {
				m.log.Warn("watching files", "err", err)
			}
			// A module in a folder watched only now may have been saved
			// since it was loaded: look at it (a reload finds out whether
			// it changed, and restarts nothing if it did not).
			if m.pendModulesIn(added, pending) {
				look.Reset(Quiet)
			}
		case <-ctx.Done():
			return nil
		}
	}
}

// watchFolders adds the folders of the watched files not yet watched,
// returning those it added.
func (m *Manager) watchFolders(w *fsnotify.Watcher, folders map[string]bool) (added []string, err error) {
	cfg, scripts, modules := m.watched()
	dirs := []string{filepath.Dir(cfg)}
	for script := range scripts {
		dirs = append(dirs, filepath.Dir(script))
	}
	for mod := range modules {
		dirs = append(dirs, filepath.Dir(mod))
	}
	for _, d := range dirs {
		if folders[d] {
			continue
		}
		if err := w.Add(d); err != nil {
			return added, fmt.Errorf("watch %s: %w", d, err)
		}
		folders[d] = true
		added = append(added, d)
	}
	return added, nil
}

func (m *Manager) isWatched(name string) bool {
	cfg, scripts, modules := m.watched()
	_, isScript := scripts[name]
	_, isModule := modules[name]
	return isScript || isModule || name == cfg
}

// lookAtPending reads each saved file. One that holds what it held at the
// previous look is stable and is reloaded (the config first: it may add,
// remove or change endpoints); one that changed, or is looked at for the
// first time, is looked at again after Settle, which lookAtPending asks
// for by returning true. A file that is missing or empty is left alone
// until an event brings it back.
func (m *Manager) lookAtPending(pending map[string][]byte) (again bool) {
	cfg, scripts, _ := m.watched()
	stable := map[string][]byte{}
	for name, last := range pending {
		now, err := readWatched(name, name == cfg)
		switch {
		case errors.Is(err, os.ErrNotExist):
			delete(pending, name) // mid-save: the next event brings it back
		case err != nil:
			delete(pending, name)
			stable[name] = nil // unreadable for good: let the reload report it
		case len(now) == 0:
			// Truncated and not written yet, the first half of an in-place
			// save: the write's event brings it back. (An empty file
			// cannot be a working script or config anyway; SIGHUP or the
			// admin reload would report it.)
			delete(pending, name)
		case last == nil || !bytes.Equal(last, now):
			pending[name] = now
			again = true
		default:
			delete(pending, name)
			stable[name] = now
		}
	}
	if src, ok := stable[cfg]; ok {
		m.reloadConfigFile(src, func() bool { return stillHolds(cfg, true, src) })
		delete(stable, cfg)
		_, scripts, _ = m.watched() // the config may have changed them
	}
	reloaded := map[string]bool{} // endpoints
	for script, src := range stable {
		for _, endpoint := range scripts[script] {
			m.reloadScriptSource(endpoint, script, src)
			reloaded[endpoint] = true
		}
	}
	m.reloadModuleUsers(stable, reloaded)
	return again
}

// readWatched reads a watched file: the config or a script, each with its
// own size limit.
func readWatched(name string, isConfig bool) ([]byte, error) {
	if isConfig {
		return safefile.Read(name, config.MaxFileBytes)
	}
	return safefile.Read(name, scripting.MaxScriptBytes)
}

// stillHolds reports whether the file at name still holds src.
func stillHolds(name string, isConfig bool, src []byte) bool {
	now, err := readWatched(name, isConfig)
	return err == nil && bytes.Equal(now, src)
}

// reloadScriptSource reloads endpoint with src, the stable content of its
// script (nil: the file cannot be read; the reload reads it and reports
// why).
func (m *Manager) reloadScriptSource(endpoint, script string, src []byte) {
	if src == nil {
		m.reloadScript(endpoint)
		return
	}
	m.mu.Lock()
	s := m.services[endpoint]
	m.mu.Unlock()
	if s == nil || filepath.Clean(s.Endpoint().Script) != script {
		return
	}
	s.ReloadSource(src, func() bool { return stillHolds(script, false, src) })
}
