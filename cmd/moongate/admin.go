package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"

	"github.com/moongate/moongate/gateway"
	"github.com/moongate/moongate/gateway/admin"
	"github.com/moongate/moongate/gateway/hub"
	"github.com/moongate/moongate/gateway/logring"
	"github.com/moongate/moongate/gateway/metrics"
	"github.com/moongate/moongate/scripting/reload"
)

// adminTokenEnv names the environment variable whose value, when set,
// lets clients off this machine reach /admin/* (see
// gateway.Server.SetAdminToken).
const adminTokenEnv = "MOONGATE_ADMIN_TOKEN"

// serveAdmin mounts the admin paths on srv: /admin/status, /admin/reload
// and the console at /admin/ (until ctx ends), and takes the admin token
// from the environment.
func serveAdmin(ctx context.Context, srv *gateway.Server, reloads *reload.Manager, m *metrics.Metrics, ring *logring.Ring, log *slog.Logger) error {
	if token := os.Getenv(adminTokenEnv); token != "" {
		if err := srv.SetAdminToken(token); err != nil {
			return fmt.Errorf("%s: %w", adminTokenEnv, err)
		}
		log.Info("admin paths answer off this machine too, given the admin token", "env", adminTokenEnv)
	}
	srv.HandleAdmin("/admin/status", reloads.StatusHandler())
	srv.HandleAdmin("/admin/reload", reloads.ReloadHandler())
	srv.HandleAdmin("/admin/", admin.New(ctx, admin.Options{
		Scripts:     adminScripts{reloads: reloads, srv: srv},
		Connections: srv,
		Metrics:     m,
		Logs:        ring,
		Log:         log,
	}))
	return nil
}

// adminScripts is what the admin console shows of the scripts, read from
// the reload manager (versions, reloads, errors) and the running config.
type adminScripts struct {
	reloads *reload.Manager
	srv     *gateway.Server
}

// ScriptStatus returns the config's and each endpoint's status, by path.
func (a adminScripts) ScriptStatus() (admin.ConfigState, []admin.EndpointState) {
	cs, scripts := a.reloads.Status()
	cfg := admin.ConfigState{File: cs.File, LoadedAt: cs.LoadedAt, Reloads: cs.Reloads, LastError: cs.LastError, LastErrorAt: cs.LastErrorAt}
	scriptOf := map[string]string{}
	for _, ep := range a.srv.Config().Endpoints {
		scriptOf[ep.Path] = ep.Script
	}
	out := make([]admin.EndpointState, 0, len(scripts))
	for path, st := range scripts {
		out = append(out, admin.EndpointState{Path: path, Script: scriptOf[path], Version: st.Version, LoadedAt: st.LoadedAt,
			Reloads: st.Reloads, LastError: st.LastError, LastErrorAt: st.LastErrorAt})
	}
	slices.SortFunc(out, func(x, y admin.EndpointState) int { return strings.Compare(x.Path, y.Path) })
	return cfg, out
}

// Hub returns the rooms of the endpoint's service.
func (a adminScripts) Hub(endpoint string) *hub.Hub {
	if s := a.reloads.Services()[endpoint]; s != nil {
		return s.Hub()
	}
	return nil
}
