package reload

import (
	"maps"
	"path/filepath"
	"slices"

	"github.com/moongate/moongate/scripting"
)

// hookModules has s signal modulesSeen whenever its running version loads
// a module it had not loaded before, so that the watcher adds the
// module's folder at once (a module a handler requires lazily included).
func (m *Manager) hookModules(s *scripting.Service) {
	s.NotifyModules(func() {
		select {
		case m.modulesSeen <- struct{}{}:
		default: // a signal is pending already
		}
	})
}

// reloadModuleUsers reloads the services whose running version loaded one
// of the stable saved files (file -> content), except those in done,
// which were reloaded with their script already (a reload reads the
// modules again anyway). Each service is reloaded once, however many of
// its modules were saved. A version that fails is reported only when a
// module file that was saved still holds what was looked at.
func (m *Manager) reloadModuleUsers(stable map[string][]byte, done map[string]bool) {
	_, _, modules := m.watched()
	saved := map[string][]string{} // endpoint -> its saved module files
	for file := range stable {
		for _, endpoint := range modules[file] {
			if !done[endpoint] {
				saved[endpoint] = append(saved[endpoint], file)
			}
		}
	}
	for _, endpoint := range slices.Sorted(maps.Keys(saved)) {
		m.mu.Lock()
		s := m.services[endpoint]
		m.mu.Unlock()
		if s == nil {
			continue
		}
		files := saved[endpoint]
		s.ReloadModules(func() bool {
			for _, f := range files {
				if src := stable[f]; src != nil && !stillHolds(f, false, src) {
					return false
				}
			}
			return true
		})
	}
}

// pendModulesIn marks as saved (to be looked at) the module files in the
// folders just added to the watch, reporting whether there was any.
func (m *Manager) pendModulesIn(folders []string, pending map[string][]byte) bool {
	if len(folders) == 0 {
		return false
	}
	_, _, modules := m.watched()
	found := false
	for file := range modules {
		if slices.Contains(folders, filepath.Dir(file)) {
			pending[file] = nil
			found = true
		}
	}
	return found
}
