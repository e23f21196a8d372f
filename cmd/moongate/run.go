package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/moongate/moongate/gateway"
	"github.com/moongate/moongate/gateway/cluster"
	"github.com/moongate/moongate/gateway/config"
	"github.com/moongate/moongate/gateway/db"
	"github.com/moongate/moongate/gateway/logring"
	"github.com/moongate/moongate/gateway/metrics"
	"github.com/moongate/moongate/gateway/rlimit"
	"github.com/moongate/moongate/scripting"
	"github.com/moongate/moongate/scripting/reload"
)

// runFlags are the flags of `moongate run`; they override the config file.
type runFlags struct {
	config    string
	listen    string
	logFormat string
	logLevel  string
	watch     bool
	cluster   string // a Redis URL: join a cluster (overrides the config's cluster)
	node      string // the node's name in the cluster
	prefix    string // the cluster's key prefix
}

func parseRunFlags(args []string, stderr io.Writer) (*runFlags, error) {
	f := &runFlags{}
	fs := flag.NewFlagSet("moongate run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&f.config, "config", defaultConfig, "config file to serve")
	fs.StringVar(&f.listen, "listen", "", "address to listen on (overrides the config's listen)")
	fs.StringVar(&f.logFormat, "log-format", "text", "log format: text or json")
	fs.StringVar(&f.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	fs.BoolVar(&f.watch, "watch", true, "reload a script when it is saved")
	fs.StringVar(&f.cluster, "cluster", "", "join a cluster over the Redis server at this URL, like redis://127.0.0.1:6379/0 (overrides the config's cluster.redis)")
	fs.StringVar(&f.prefix, "cluster-prefix", "", "the prefix of the cluster's keys in Redis (overrides the config's cluster.prefix; default mg)")
	fs.StringVar(&f.node, "node", "", "this node's name in the cluster (overrides the config's cluster.node; default: host name and pid)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	return f, nil
}

// applyCluster puts -cluster and -node into cfg's cluster section.
func (f *runFlags) applyCluster(cfg *config.Config) error {
	if f.cluster == "" && f.node == "" && f.prefix == "" {
		return nil
	}
	c := config.Cluster{Prefix: config.DefaultClusterPrefix, Node: config.DefaultNodeName()}
	if cfg.Cluster != nil {
		c = *cfg.Cluster
	}
	if f.cluster != "" {
		c.Redis, c.RedisEnv = f.cluster, ""
	}
	if f.node != "" {
		c.Node = f.node
	}
	if f.prefix != "" {
		c.Prefix = f.prefix
	}
	if err := c.Check(); err != nil {
		return err
	}
	cfg.Cluster = &c
	cfg.ClusterFromFlags = true
	return nil
}

// exit ends the process; a variable so that nothing else calls os.Exit.
var exit = os.Exit

// backstopGrace is how long past shutdown_timeout the process may take to
// stop before it exits anyway (with status 1). Shutdown is bounded by the
// deadline on its own; this only guards against what it did not foresee.
const backstopGrace = 750 * time.Millisecond

// errShutdownCut says that the shutdown deadline cut something short.
var errShutdownCut = errors.New("shutdown cut short")

// runCommand serves the config until ctx is cancelled or the first SIGINT
// or SIGTERM, then shuts down gracefully within shutdown_timeout; a second
// signal exits at once. It returns 0 after a clean shutdown, 1 when the
// deadline cut something (or a second signal came), 2 for bad flags.
func runCommand(ctx context.Context, args []string, stderr io.Writer) int {
	f, err := parseRunFlags(args, stderr)
	if err != nil {
		return 2
	}
	ring := logring.New(logring.DefaultSize, nil)
	log, err := newLogger(stderr, f.logFormat, f.logLevel, ring)
	if err != nil {
		fmt.Fprintf(stderr, "moongate: %v\n", err)
		return 2
	}
	cfg, err := config.Load(f.config)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	fileListen := cfg.Listen
	if f.listen != "" {
		cfg.Listen = f.listen
	}
	if err := f.applyCluster(cfg); err != nil {
		fmt.Fprintf(stderr, "moongate: %v\n", err)
		return 2
	}
	ctx, stop := watchSignals(ctx, log)
	defer stop()
	if err := serve(ctx, cfg, fileListen, log, ring, f.watch); err != nil {
		if !errors.Is(err, errShutdownCut) {
			fmt.Fprintln(stderr, err)
		}
		return 1
	}
	return 0
}

// watchSignals returns a context cancelled at the first SIGINT or SIGTERM;
// a second one exits the process at once, with status 1. stop ends the
// watching (and its goroutine).
func watchSignals(parent context.Context, log *slog.Logger) (ctx context.Context, stop func()) {
	ctx, cancel := context.WithCancel(parent)
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		select {
		case sig := <-sigs:
			log.Info("signal received", "signal", sig.String())
			cancel()
		case <-done:
			return
		}
		select {
		case sig := <-sigs:
			log.Error("second signal: exiting now, without finishing the shutdown", "signal", sig.String())
			exit(1)
		case <-done:
		}
	}()
	return ctx, func() {
		signal.Stop(sigs)
		close(done)
		cancel()
	}
}

// serve starts the services and the server for cfg and runs them until ctx
// is cancelled. The config and scripts reload on save (when watch is set),
// on SIGHUP and on POST /admin/reload. fileListen is the listen address the
// config file names (cfg.Listen may be -listen's instead).
func serve(ctx context.Context, cfg *config.Config, fileListen string, log *slog.Logger, ring *logring.Ring, watch bool) error {
	if n, err := rlimit.RaiseOpenFiles(); err != nil {
		log.Warn("open-file limit unchanged", "err", err)
	} else {
		log.Debug("open-file limit", "files", n)
	}
	m := metrics.New()
	dbs, err := openDatabases(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer closeDatabases(dbs, cfg, log) // after the services, which use them
	opts := []scripting.Option{scripting.WithDatabases(dbs)}
	var node *cluster.Node
	if cfg.Cluster != nil {
		if node, err = cluster.Open(ctx, cfg.Cluster, log); err != nil {
			return err
		}
		defer node.Close() // after the services, which use it
		m.Registry().MustRegister(node.Collectors()...)
		opts = append(opts, scripting.WithCluster(node))
	}
	services, err := startServices(cfg, log, m, opts...)
	if err != nil {
		return err
	}
	gw := make(map[string]gateway.Service, len(services))
	for path, s := range services {
		gw[path] = s
	}
	srv, err := gateway.New(cfg, gw, log, m)
	if err != nil {
		closeWithin(services, cfg.ShutdownTimeout)
		return err
	}
	if node != nil {
		srv.SetHealthCheck(node.Healthy)
	}
	reloads := reload.New(cfg, services, srv, log, m)
	reloads.ListenOverridden(fileListen)
	reloads.UseDatabases(dbs)
	reloads.UseOptions(opts...)
	shutDown := false // once serving stops, shutdown closes the services
	defer func() {
		if !shutDown { // serving failed or never started
			closeWithin(reloads.Services(), cfg.ShutdownTimeout)
		}
	}()
	bg, stopBackground := context.WithCancel(ctx) // the watcher, SIGHUP, the admin console's live feed
	defer stopBackground()
	if err := serveAdmin(bg, srv, reloads, m, ring, log); err != nil {
		return err
	}
	if cfg.Pprof {
		srv.HandleAdmin("/debug/pprof/", http.HandlerFunc(pprof.Index))
		srv.HandleAdmin("/debug/pprof/profile", http.HandlerFunc(pprof.Profile))
		srv.HandleAdmin("/debug/pprof/trace", http.HandlerFunc(pprof.Trace))
		log.Info("profiling", "url", "/debug/pprof/", "from", "loopback only")
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	removeAddr, err := writeAddr(cfg.File, ln.Addr().String())
	if err != nil {
		log.Warn("moongate reload will not find this gateway by its config", "err", err)
	}
	defer removeAddr()
	startReloading(bg, reloads, watch, log)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err := <-served:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	stopBackground()
	shutDown = true
	return shutdown(srv, reloads, served, cfg.ShutdownTimeout, log)
}

// shutdown stops the server, then the services, all within timeout (see
// gateway.Server.Shutdown and scripting.Service.Shutdown): what is still
// running at the deadline is abandoned, logged, and makes it return
// errShutdownCut. Should it overrun the deadline regardless, the process
// exits backstopGrace later.
func shutdown(srv *gateway.Server, reloads *reload.Manager, served <-chan error, timeout time.Duration, log *slog.Logger) error {
	log.Info("shutting down", "timeout", timeout)
	backstop := time.AfterFunc(timeout+backstopGrace, func() {
		log.Error("shutdown overran its deadline: exiting now", "timeout", timeout)
		exit(1)
	})
	defer backstop.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	err := srv.Shutdown(ctx)
	if serr := <-served; !errors.Is(serr, http.ErrServerClosed) {
		err = errors.Join(err, fmt.Errorf("serve: %w", serr))
	}
	services, serr := runningServices(ctx, reloads)
	err = errors.Join(err, serr, reloads.Close(ctx), closeServices(ctx, services))
	if err != nil {
		log.Error("shutdown cut short", "timeout", timeout, "err", err.Error())
		return errShutdownCut
	}
	log.Info("stopped")
	return nil
}

// startReloading reloads the config and scripts on SIGHUP and, when watch
// is set, when they are saved, until ctx is done.
func startReloading(ctx context.Context, reloads *reload.Manager, watch bool, log *slog.Logger) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	go func() {
		defer signal.Stop(hup)
		for {
			select {
			case <-hup:
				log.Info("SIGHUP: reloading the config and scripts")
				reloads.ReloadAll()
			case <-ctx.Done():
				return
			}
		}
	}()
	if !watch {
		return
	}
	w, err := reloads.NewWatcher() // before the gateway says it started: no save is missed
	if err != nil {
		log.Error("watching files failed: saves will not reload", "err", err)
		return
	}
	go func() {
		if err := w.Run(ctx); err != nil {
			log.Error("watching files stopped", "err", err)
		}
	}()
}

// openDatabases opens the databases cfg declares. A database that cannot
// be opened (a malformed DSN, an unset dsn_env, a SQLite file that cannot
// be created) is an error; a PostgreSQL server that is down is a warning,
// and its pool connects on each call until it is back.
func openDatabases(ctx context.Context, cfg *config.Config, log *slog.Logger) (*db.Set, error) {
	set := db.NewSet(log)
	cfgs, err := reload.DatabaseConfigs(cfg)
	if err == nil {
		err = set.Apply(ctx, cfgs)
	}
	if err != nil {
		set.Close()
		return nil, fmt.Errorf("%s: databases: %w", cfg.File, err)
	}
	return set, nil
}

// closeDatabases closes the gateway's databases once its services are
// done with them. A statement still running ends within its database's
// timeout, so Close is waited for that long (the longest of cfg's
// databases'); a pool still held after that (by a handler the shutdown
// abandoned, in a transaction) is left to the process's exit.
func closeDatabases(set *db.Set, cfg *config.Config, log *slog.Logger) {
	wait := time.Second
	for _, d := range cfg.Databases {
		wait = max(wait, d.Timeout)
	}
	done := make(chan error, 1)
	go func() { done <- set.Close() }() // ends when the pools are closed, or with the process
	select {
	case err := <-done:
		if err != nil {
			log.Error("closing the databases", "err", err.Error())
		}
	case <-time.After(wait):
		log.Warn("databases still in use after their timeout: left to close with the process", "waited", wait)
	}
}

// startServices starts the Lua service of every endpoint with opts.
func startServices(cfg *config.Config, log *slog.Logger, m *metrics.Metrics, opts ...scripting.Option) (map[string]*scripting.Service, error) {
	services := make(map[string]*scripting.Service, len(cfg.Endpoints))
	for _, ep := range cfg.Endpoints {
		s, err := scripting.New(ep, log, m.Endpoint(ep.Path), opts...)
		if err != nil {
			closeWithin(services, cfg.ShutdownTimeout)
			return nil, fmt.Errorf("endpoint %s: %w", ep.Path, err)
		}
		services[ep.Path] = s
	}
	return services, nil
}

// runningServices returns the services running, or an error when ctx ends
// first: a config reload waiting for a stuck script holds them (the
// goroutine asking ends when that reload does).
func runningServices(ctx context.Context, reloads *reload.Manager) (map[string]*scripting.Service, error) {
	got := make(chan map[string]*scripting.Service, 1)
	go func() { got <- reloads.Services() }()
	select {
	case services := <-got:
		return services, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("services not closed: a config reload still holds them: %w", ctx.Err())
	}
}

// closeWithin closes services after a failed start, waiting for them at
// most timeout.
func closeWithin(services map[string]*scripting.Service, timeout time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	closeServices(ctx, services)
}

// closeServices shuts the services down together, waiting for them until
// ctx ends; the error names the endpoints whose services were cut short.
func closeServices(ctx context.Context, services map[string]*scripting.Service) error {
	errs := make(chan error, len(services))
	for path, s := range services {
		go func() {
			if err := s.Shutdown(ctx); err != nil {
				errs <- fmt.Errorf("endpoint %s: %w", path, err)
				return
			}
			errs <- nil
		}()
	}
	var all []error
	for range services {
		all = append(all, <-errs)
	}
	return errors.Join(all...)
}

// newLogger returns a slog logger writing to w in format at level; ring
// (when not nil) keeps the last records it writes, for the admin console.
func newLogger(w io.Writer, format, level string, ring *logring.Ring) (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("-log-level: %q is not debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lvl}
	var h slog.Handler
	switch strings.ToLower(format) {
	case "text":
		h = slog.NewTextHandler(w, opts)
	case "json":
		h = slog.NewJSONHandler(w, opts)
	default:
		return nil, fmt.Errorf("-log-format: %q is not text or json", format)
	}
	if ring != nil {
		h = ring.Handler(h)
	}
	return slog.New(h), nil
}
