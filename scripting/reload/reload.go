// Package reload keeps a running gateway current with its files: it
// reloads a service when its script is saved and applies the config file
// when that is saved (watching with fsnotify, debounced so an editor's
// burst of writes or rename-and-replace ends in one reload), on SIGHUP, and
// when asked over the admin endpoint. What fails to load never replaces
// what runs.
package reload

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/moongate/moongate/gateway"
	"github.com/moongate/moongate/gateway/config"
	"github.com/moongate/moongate/gateway/db"
	"github.com/moongate/moongate/gateway/metrics"
	"github.com/moongate/moongate/scripting"
)

// Server is the part of the gateway a config reload drives.
type Server interface {
	Apply(cfg *config.Config, services map[string]gateway.Service) error
}

// Manager reloads the scripts and the config of a running gateway.
type Manager struct {
	log     *slog.Logger
	metrics *metrics.Metrics
	server  Server

	mu         sync.Mutex         // serializes reloads and guards what follows
	dbs        *db.Set            // the gateway's databases; nil: none are served
	opts       []scripting.Option // given to every service started (UseOptions)
	cfg        *config.Config
	fileListen string                        // listen as the config file said it when last read
	services   map[string]*scripting.Service // endpoint path -> service
	cfgState   ConfigStatus
	retiring   sync.WaitGroup // services of removed endpoints, closing
	retiringN  atomic.Int32   // how many of them are still closing
	// modulesSeen is signalled when a service loads a module it had not
	// loaded, so that the watcher watches its folder (modules.go).
	modulesSeen chan struct{}
}

// New returns a manager for a gateway that serves cfg with services
// (endpoint path -> service) through server.
func New(cfg *config.Config, services map[string]*scripting.Service, server Server, log *slog.Logger, m *metrics.Metrics) *Manager {
	mgr := &Manager{log: log, metrics: m, server: server, cfg: cfg, services: services, fileListen: cfg.Listen,
		cfgState: ConfigStatus{File: cfg.File, LoadedAt: time.Now()}, modulesSeen: make(chan struct{}, 1)}
	for _, s := range services {
		mgr.hookModules(s)
	}
	return mgr
}

// ListenOverridden tells the manager that the gateway listens on an
// address given on the command line instead of fileListen, the one in the
// config file: reloads keep the running address and warn only when the
// file's own listen changes.
func (m *Manager) ListenOverridden(fileListen string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.fileListen = fileListen
}

// UseDatabases gives the manager the gateway's databases, already opened
// for the config it was made with (see [DatabaseConfigs]): every service
// it starts may use them (scripting.WithDatabases), and a config reload
// applies the config's databases to the set before its endpoints. Without
// it, services get no databases and reloads leave databases alone.
func (m *Manager) UseDatabases(set *db.Set) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.dbs = set
}

// UseOptions gives every service the manager starts from now on opts
// (the cluster the gateway belongs to, say), as the first services got.
func (m *Manager) UseOptions(opts ...scripting.Option) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.opts = opts
}

// serviceOptions returns the options a service the manager starts gets:
// those UseOptions gave, and the gateway's databases when UseDatabases
// gave them. m.mu is held.
func (m *Manager) serviceOptions() []scripting.Option {
	opts := append([]scripting.Option(nil), m.opts...)
	if m.dbs != nil {
		opts = append(opts, scripting.WithDatabases(m.dbs))
	}
	return opts
}

// Services returns the services now running, by endpoint path.
func (m *Manager) Services() map[string]*scripting.Service {
	m.mu.Lock()
	defer m.mu.Unlock()
	return maps.Clone(m.services)
}

// Close waits, until ctx ends, for the services of removed endpoints to
// finish closing; it returns an error when ctx ends first (what is left
// goes on closing on its own goroutines).
func (m *Manager) Close(ctx context.Context) error {
	if m.retiringN.Load() == 0 {
		return nil
	}
	done := make(chan struct{})
	go func() { // ends when the retiring services have
		m.retiring.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("services of removed endpoints still closing: %w", ctx.Err())
	}
}

// Result is the outcome of reloading one endpoint's script.
type Result struct {
	Endpoint string `json:"endpoint"`
	Changed  bool   `json:"changed"`
	Version  string `json:"version"`
	Error    string `json:"error,omitempty"`
}

// ReloadAll applies the config file if it changed, then reloads every
// script that changed. The error is the config's, if it was refused.
func (m *Manager) ReloadAll() ([]Result, error) {
	cfgErr := m.ReloadConfig()
	m.mu.Lock()
	paths := make([]string, 0, len(m.services))
	for p := range m.services {
		paths = append(paths, p)
	}
	m.mu.Unlock()
	slices.Sort(paths)
	out := make([]Result, 0, len(paths))
	for _, p := range paths {
		out = append(out, m.reloadScript(p))
	}
	return out, cfgErr
}

// reloadScript reloads the script of one endpoint.
func (m *Manager) reloadScript(endpoint string) Result {
	m.mu.Lock()
	s := m.services[endpoint]
	m.mu.Unlock()
	if s == nil {
		return Result{Endpoint: endpoint, Error: "no such endpoint"}
	}
	changed, err := s.Reload()
	r := Result{Endpoint: endpoint, Changed: changed, Version: s.Status().Version}
	if err != nil {
		r.Error = err.Error()
	}
	return r
}

// ConfigStatus is what the manager reports about the config file.
type ConfigStatus struct {
	File        string    `json:"file"`
	LoadedAt    time.Time `json:"loaded_at"`
	Reloads     int       `json:"reloads"`
	LastError   string    `json:"last_error,omitempty"`
	LastErrorAt time.Time `json:"last_error_at,omitzero"`
}

// Status returns the config's status and each endpoint's script status.
func (m *Manager) Status() (ConfigStatus, map[string]scripting.Status) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make(map[string]scripting.Status, len(m.services))
	for p, s := range m.services {
		out[p] = s.Status()
	}
	return m.cfgState, out
}

// ReloadConfig reads the config file again and, when it changed, applies
// it: endpoints added start serving, endpoints removed close their clients
// with 1001, endpoints changed switch to their new settings (see
// gateway.Server.Apply and scripting.Service.Update). Its databases are
// applied first (see UseDatabases and db.Set.Apply): pools of databases
// added or changed open, unchanged ones stay, removed ones close. A config
// with any error — in the file, in a script it adds or changes, or a
// database that fails to open — is refused whole and the running one
// stays. The listen address only changes on restart.
func (m *Manager) ReloadConfig() error {
	return m.reloadConfigFile(nil, nil)
}

// reloadConfigFile is ReloadConfig with the file's content already read
// (nil: read it now). If that content is refused, current (when not nil)
// is asked whether the file still holds it: a failure of content already
// replaced on disk is neither logged nor recorded, since a newer save is
// on its way.
func (m *Manager) reloadConfigFile(src []byte, current func() bool) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	begin := time.Now()
	var next *config.Config
	var err error
	if src == nil {
		next, err = config.Load(m.cfg.File)
	} else {
		next, err = config.Parse(m.cfg.File, src)
	}
	if err == nil {
		err = m.checkScripts(next)
	}
	if err != nil {
		if current != nil && !current() {
			return err
		}
		return m.refuse(err)
	}
	if next.Listen != m.fileListen { // said once per change of the file's listen
		m.log.Warn("listen changed in the config: it takes effect after a restart", "running", m.cfg.Listen, "config", next.Listen)
		m.fileListen = next.Listen
	}
	next.Listen = m.cfg.Listen
	if !m.cfg.ClusterFromFlags && !config.SameCluster(next, m.cfg) {
		m.log.Warn("cluster changed in the config: it takes effect after a restart")
	}
	next.Cluster, next.ClusterFromFlags = m.cfg.Cluster, m.cfg.ClusterFromFlags
	if next.Equal(m.cfg) {
		m.cfg = next // only where things stand in the file moved
		return nil
	}
	restore, err := m.applyDatabases(next)
	if err != nil {
		return m.refuse(err)
	}
	added, removed, changed, err := m.apply(next)
	if err != nil {
		restore()
		return m.refuse(err)
	}
	m.cfgState.LoadedAt = time.Now()
	m.cfgState.Reloads++
	m.log.Info("config reloaded", "config", next.File, "added", added, "removed", removed, "changed", changed,
		"took", time.Since(begin).Round(time.Microsecond))
	return nil
}

// refuse records and logs err, why a config was refused, and returns it.
func (m *Manager) refuse(err error) error {
	m.cfgState.LastError, m.cfgState.LastErrorAt = err.Error(), time.Now()
	m.log.Error("config reload failed; the running config stays", "config", m.cfg.File, "err", err.Error())
	return err
}

// applyDatabases applies next's databases to the set, before its
// endpoints, so that a service started for next finds them. When one fails
// to open, nothing changes and the error says which (the reload is then
// refused whole). restore puts the running config's databases back, for
// when the endpoints of next fail after all.
func (m *Manager) applyDatabases(next *config.Config) (restore func(), err error) {
	if m.dbs == nil || config.SameDatabases(m.cfg, next) {
		return func() {}, nil
	}
	cfgs, err := DatabaseConfigs(next)
	if err != nil {
		return nil, err
	}
	if err := m.dbs.Apply(context.Background(), cfgs); err != nil {
		return nil, fmt.Errorf("databases: %w", err)
	}
	running := m.cfg
	return func() {
		cfgs, err := DatabaseConfigs(running)
		if err == nil {
			err = m.dbs.Apply(context.Background(), cfgs)
		}
		if err != nil {
			m.log.Error("restoring the running config's databases failed", "config", running.File, "err", err.Error())
		}
	}, nil
}

// DatabaseConfigs returns what db.Set.Apply needs to open cfg's
// databases, reading the environment variables their dsn_env names now.
// The error names the database and the variable when one is unset.
func DatabaseConfigs(cfg *config.Config) ([]db.Config, error) {
	out := make([]db.Config, 0, len(cfg.Databases))
	var errs []error
	for _, d := range cfg.Databases {
		dsn, err := cfg.DSN(d)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out = append(out, db.Config{Name: d.Name, Driver: d.Driver, DSN: dsn, MaxConns: d.Pool, Timeout: d.Timeout})
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return out, nil
}

// checkScripts compiles and loads the script of every endpoint the new
// config adds or changes, so that a broken one refuses the whole config.
func (m *Manager) checkScripts(next *config.Config) error {
	var errs []error
	for _, ep := range next.Endpoints {
		if s := m.services[ep.Path]; s != nil && s.Endpoint().Equal(ep) {
			continue
		}
		if err := scripting.Check(ep); err != nil {
			errs = append(errs, fmt.Errorf("endpoint %s: %w", ep.Path, err))
		}
	}
	return errors.Join(errs...)
}

// apply starts the services of added endpoints, updates changed ones,
// switches the server, and retires the services of removed endpoints.
func (m *Manager) apply(next *config.Config) (added, removed, changed []string, err error) {
	services := make(map[string]*scripting.Service, len(next.Endpoints))
	var started []*scripting.Service
	for _, ep := range next.Endpoints {
		if s := m.services[ep.Path]; s != nil {
			services[ep.Path] = s
			continue
		}
		s, err := scripting.New(ep, m.log, m.metrics.Endpoint(ep.Path), m.serviceOptions()...)
		if err != nil {
			for _, s := range started {
				s.Close()
			}
			return nil, nil, nil, fmt.Errorf("endpoint %s: %w", ep.Path, err)
		}
		m.hookModules(s)
		started = append(started, s)
		services[ep.Path] = s
		added = append(added, ep.Path)
	}
	for _, ep := range next.Endpoints {
		if s := m.services[ep.Path]; s != nil && !s.Endpoint().Equal(ep) {
			if _, err := s.Update(ep); err != nil {
				m.log.Error("endpoint kept its previous settings", "endpoint", ep.Path, "err", err.Error())
			}
			changed = append(changed, ep.Path)
		}
	}
	gw := make(map[string]gateway.Service, len(services))
	for p, s := range services {
		gw[p] = s
	}
	if err := m.server.Apply(next, gw); err != nil {
		for _, s := range started {
			s.Close()
		}
		return nil, nil, nil, err
	}
	for p, s := range m.services {
		if services[p] == nil {
			removed = append(removed, p)
			m.retire(p, s, next.ShutdownTimeout)
		}
	}
	m.cfg, m.services = next, services
	slices.Sort(added)
	slices.Sort(removed)
	slices.Sort(changed)
	return added, removed, changed, nil
}

// retire closes the service of a removed endpoint once its clients are
// gone (the server answers what they sent, then closes them with 1001; see
// gateway.Server.Apply) and their close handlers have run, all within
// timeout; what is still running then is abandoned and logged.
func (m *Manager) retire(path string, s *scripting.Service, timeout time.Duration) {
	m.retiring.Add(1)
	m.retiringN.Add(1)
	go func() {
		defer m.retiring.Done()
		defer m.retiringN.Add(-1)
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		for s.Hub().ClientCount() > 0 && ctx.Err() == nil {
			time.Sleep(10 * time.Millisecond)
		}
		if err := s.Shutdown(ctx); err != nil {
			m.log.Warn("removed endpoint's service cut short", "endpoint", path, "clients", s.Hub().ClientCount(), "err", err.Error())
		}
	}()
}

// watched returns the files to watch: the config, every script and every
// module a running version loaded (file -> the endpoints that use it).
func (m *Manager) watched() (configFile string, scripts, modules map[string][]string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	scripts, modules = make(map[string][]string), make(map[string][]string)
	for path, s := range m.services {
		script := filepath.Clean(s.Endpoint().Script)
		scripts[script] = append(scripts[script], path)
		for _, mod := range s.Modules() {
			mod = filepath.Clean(mod)
			modules[mod] = append(modules[mod], path)
		}
	}
	return filepath.Clean(m.cfg.File), scripts, modules
}
