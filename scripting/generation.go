package scripting

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"runtime/metrics"
	"strings"
	"sync"
	"time"

	"github.com/moongate/moongate/gateway/config"
	"github.com/moongate/moongate/gateway/outbound"
	"github.com/moongate/moongate/gateway/safefile"

	lua "github.com/yuin/gopher-lua"
)

// generation is one version of the script running in its set of states.
// A reload builds the next generation beside the current one and switches
// to it only once it has loaded and started.
type generation struct {
	ep      config.Endpoint // the settings this generation runs with
	version string
	states  []*state
	ctx     context.Context // cancelled when the generation is retired
	cancel  context.CancelFunc
	ready   chan struct{}  // closed when the states may start taking events
	done    sync.WaitGroup // the states' goroutines
	http    *outbound.Client
	modules *modules // what require loaded: the files this version depends on
}

// versionOf names a script's content: the start of its SHA-256. A script
// that loads modules is named with theirs (modules.version).
func versionOf(src []byte) string {
	sum := sha256.Sum256(src)
	return hex.EncodeToString(sum[:6])
}

// MaxScriptBytes bounds the size of a script file.
const MaxScriptBytes = 4 << 20

// readScript reads a script, as a *ScriptError when it cannot: it is
// missing, not a regular file (a FIFO or a device behind a symlink is
// refused, never read), or larger than MaxScriptBytes.
func readScript(path string) ([]byte, error) {
	src, err := safefile.Read(path, MaxScriptBytes)
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return nil, &ScriptError{Script: path, Msg: strings.TrimPrefix(err.Error(), path+": ")}
	}
	return src, nil
}

// build compiles src, loads it into fresh states and runs their start (and,
// after a reload, reload(previous)) handler. Nothing is running yet when it
// returns; on error nothing is left behind. The generation's budget
// watchdog starts here, so the top level and start are held to the budget
// like any handler. After a reload (prev, the running generation, not
// nil) the modules prev loaded are compiled first, so that a broken one
// refuses the version even when only a handler requires it.
func (s *Service) build(ep config.Endpoint, src []byte, prev *generation) (*generation, error) {
	proto, err := CompileSource(ep.Script, src)
	if err != nil {
		return nil, err
	}
	policy := outbound.Policy(ep.HTTP)
	if err := policy.Validate(); err != nil {
		return nil, fmt.Errorf("endpoint %s: %w", ep.Path, err)
	}
	mods := newModules(ep.Script, src, s.modHook.call)
	previous := ""
	if prev != nil {
		previous = prev.version
		if err := mods.carry(prev.modules); err != nil {
			return nil, err
		}
	}
	ctx, cancel := context.WithCancel(s.ctx)
	gen := &generation{ep: ep, ctx: ctx, cancel: cancel, ready: make(chan struct{}),
		http: outbound.New(policy, outbound.WithObserver(s.metrics.HTTPCall)), modules: mods}
	for i := range max(ep.States, 1) {
		gen.states = append(gen.states, newState(s, gen, i))
	}
	gen.done.Add(len(gen.states)) // done by their goroutines, or by close
	s.startWatchdog(gen)
	for _, st := range gen.states {
		if err := st.load(proto); err != nil {
			gen.close()
			return nil, err
		}
	}
	for _, w := range unknownHandlers(ep.Script, gen.states[0].returned) {
		s.log.Warn("script returns a function no event calls", "warning", w)
	}
	if err := gen.states[0].startUp(previous); err != nil {
		gen.close()
		return nil, err
	}
	gen.version = mods.version(src)
	return gen, nil
}

// close releases the states of a generation that never ran, and stops its
// watchdog.
func (g *generation) close() {
	g.cancel()
	for _, st := range g.states {
		st.timers.stopAll()
		st.L.Close()
		g.done.Done()
	}
	g.http.Close()
}

// launch starts the goroutines of gen's states. They wait for gen.ready
// before they take events.
func (s *Service) launch(gen *generation) {
	for _, st := range gen.states {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			st.run() // gen.done.Done() when the state closes
		}()
	}
}

// budget returns the generation's handler budget.
func (g *generation) budget() time.Duration {
	if g.ep.Budget <= 0 {
		return config.DefaultBudget
	}
	return g.ep.Budget
}

// startWatchdog starts gen's budget watchdog, which runs until gen is
// retired.
func (s *Service) startWatchdog(gen *generation) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.watchBudgets(gen)
	}()
}

// watchBudgets interrupts any call of gen (a handler, the top level) that
// uses more CPU time than the budget or grows the heap past the endpoint's
// handler_memory, until gen's states have stopped (they drain their
// inboxes under the budget too). gen.done counts the states from the
// moment they are made, so that this holds from the first line of the
// script that runs.
func (s *Service) watchBudgets(gen *generation) {
	budget := gen.budget()
	memLimit := uint64(max(gen.ep.HandlerMemory, 0))
	t := time.NewTicker(min(max(budget/5, time.Millisecond), 20*time.Millisecond))
	defer t.Stop()
	heap := newHeapGauge()
	stopped := make(chan struct{})
	go func() { // ends with the states
		gen.done.Wait()
		close(stopped)
	}()
	for {
		select {
		case <-t.C:
			h := heap.bytes()
			for _, st := range gen.states {
				st.interruptIfOver(budget, h, memLimit)
			}
		case <-stopped:
			return
		}
	}
}

// Reload reads the script again and, if it changed, switches the service to
// the new version: it is compiled, loaded into fresh states and started
// while the current version keeps serving; only when all that succeeded do
// new events go to the new states. Events already queued to the old states
// are handled there first, so each client's events stay in order; then the
// old states are closed. Clients, attributes, rooms and the store carry
// over untouched. A version that fails never replaces the running one.
// Reload returns once the new version is serving; changed is false when
// the script is the same as the one running.
func (s *Service) Reload() (changed bool, err error) {
	return s.Update(s.Endpoint())
}

// Update is Reload with new endpoint settings (script, states, options,
// budget, inbox): the service switches to a generation built with them.
// Nothing changes when neither the settings nor the script did.
func (s *Service) Update(ep config.Endpoint) (changed bool, err error) {
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	src, err := readScript(ep.Script)
	if err != nil {
		return false, s.reloadFailed(err)
	}
	return s.update(ep, src, nil)
}

// ReloadSource is Reload with the script's content already read, by a
// watcher that saw the file stable. If that version fails, current is asked
// whether src is still what the file holds: a failure of content already
// replaced on disk is returned but neither logged nor recorded, since a
// newer save is on its way.
func (s *Service) ReloadSource(src []byte, current func() bool) (changed bool, err error) {
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	return s.update(s.Endpoint(), src, current)
}

// update switches the service to a generation running src with ep, unless
// neither changed. s.reloadMu is held.
func (s *Service) update(ep config.Endpoint, src []byte, current func() bool) (changed bool, err error) {
	begin := time.Now()
	s.mu.RLock()
	old := s.gen
	s.mu.RUnlock()
	if ep.Equal(old.ep) && old.modules.unchanged(src) {
		if s.status.recovered() {
			s.log.Info("script recovered: the file holds the running version again", "script", ep.Script, "version", old.version)
		}
		return false, nil
	}
	gen, err := s.build(ep, src, old)
	if err != nil {
		if current != nil && !current() {
			return false, err
		}
		return false, s.reloadFailed(err)
	}
	s.launch(gen)
	s.mu.Lock()
	s.gen = gen
	s.mu.Unlock()
	// Its modules are the ones to watch now.
	s.modHook.call()
	old.cancel() // the old states handle what they hold, suspended handlers finish, then they stop
	old.done.Wait()
	old.http.Close()
	close(gen.ready)
	s.status.loaded(gen.version)
	s.metrics.Reloaded(true)
	s.log.Info("script reloaded", "script", ep.Script, "version", gen.version, "previous", old.version,
		"states", len(gen.states), "took", time.Since(begin).Round(time.Microsecond))
	return true, nil
}

// reloadFailed records a reload that did not happen.
func (s *Service) reloadFailed(err error) error {
	s.status.failed(err)
	s.metrics.Reloaded(false)
	s.log.Error("script reload failed; the running version stays", "err", err.Error(), "version", s.Status().Version)
	return err
}

// Status is what a service reports about the script it runs.
type Status struct {
	Version     string    `json:"version"`
	LoadedAt    time.Time `json:"loaded_at"`
	Reloads     int       `json:"reloads"`
	LastError   string    `json:"last_error,omitempty"`
	LastErrorAt time.Time `json:"last_error_at,omitzero"`
}

// Status returns the running version, when it loaded, and the last error.
func (s *Service) Status() Status { return s.status.get() }

// statusBox guards a Status.
type statusBox struct {
	mu sync.Mutex
	st Status
}

func (b *statusBox) get() Status {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.st
}

func (b *statusBox) loaded(version string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.st.Version != "" {
		b.st.Reloads++
	}
	b.st.Version, b.st.LoadedAt = version, time.Now()
}

// recovered clears the last error, reporting whether there was one.
func (b *statusBox) recovered() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	had := b.st.LastError != ""
	b.st.LastError, b.st.LastErrorAt = "", time.Time{}
	return had
}

func (b *statusBox) failed(err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.st.LastError, b.st.LastErrorAt = err.Error(), time.Now()
}

// startUp runs the start handler and, after a reload, reload(previous), on
// the goroutine building the generation (no other goroutine has the state
// yet), each under the budget.
func (st *state) startUp(previous string) error {
	if err := st.callDirect(evStart); err != nil {
		return err
	}
	if previous == "" {
		return nil
	}
	return st.callDirect(evReload, lua.LString(previous))
}

// callDirect calls a handler outside the state's goroutine loop, on the
// goroutine building the generation, under the budget.
func (st *state) callDirect(kind eventKind, args ...lua.LValue) error {
	fn := st.handlers[kind]
	if fn == nil {
		return nil
	}
	st.cur = st.main
	err := st.protectedCall(st.main, fn, 0, args...)
	st.giveUpReserved(st.main)
	st.cur = nil
	if err != nil {
		st.report(eventNames[kind], nil, err)
	}
	return err
}

// heapGauge reads the bytes of live heap objects, without allocating.
type heapGauge struct{ sample []metrics.Sample }

func newHeapGauge() *heapGauge {
	return &heapGauge{sample: []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}}
}

func (g *heapGauge) bytes() uint64 {
	metrics.Read(g.sample)
	if g.sample[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return g.sample[0].Value.Uint64()
}
