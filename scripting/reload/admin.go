package reload

import (
	"encoding/json"
	"net/http"
)

// StatusHandler serves each endpoint's script status as JSON: the version
// it runs, when that loaded, how many reloads, and the last error.
func (m *Manager) StatusHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cfg, endpoints := m.Status()
		writeJSON(w, http.StatusOK, map[string]any{"config": cfg, "endpoints": endpoints})
	})
}

// ReloadHandler applies the config and reloads every changed script on
// POST, and answers with the results; 200 when everything succeeded, 500
// when something was refused.
func (m *Manager) ReloadHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			http.Error(w, "use POST", http.StatusMethodNotAllowed)
			return
		}
		results, cfgErr := m.ReloadAll()
		status := http.StatusOK
		body := map[string]any{"results": results}
		if cfgErr != nil {
			status = http.StatusInternalServerError
			body["config_error"] = cfgErr.Error()
		}
		for _, res := range results {
			if res.Error != "" {
				status = http.StatusInternalServerError
			}
		}
		writeJSON(w, status, body)
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}
