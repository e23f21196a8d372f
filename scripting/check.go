package scripting

import (
	"context"
	"fmt"
	"log/slog"
	"slices"

	"github.com/moongate/moongate/gateway/config"
	"github.com/moongate/moongate/gateway/hub"
	"github.com/moongate/moongate/gateway/metrics"
	"github.com/moongate/moongate/gateway/outbound"
	lua "github.com/yuin/gopher-lua"
)

// Check compiles the endpoint's script and runs its top level in one Lua
// state, under the budget, reporting the first problem as a *ScriptError,
// without starting the service.
func Check(ep config.Endpoint) error {
	_, err := check(ep, false)
	return err
}

// Vet is Check that also runs the script's start handler in the throwaway
// state (no clients, a store of its own), as a run would, and returns a
// warning for each handler name Moongate does not know ("mesage": did you
// mean "message"?). Options lend the throwaway state what start may use,
// such as stand-in databases (WithDatabases).
func Vet(ep config.Endpoint, opts ...Option) (warnings []string, err error) {
	return check(ep, true, opts...)
}

// VetTopLevel is Vet without the start handler: for an endpoint whose start
// needs what a throwaway state cannot have (a database server).
func VetTopLevel(ep config.Endpoint) (warnings []string, err error) {
	return check(ep, false)
}

// check loads ep's script in a throwaway state and, with start, runs its
// start handler there.
func check(ep config.Endpoint, start bool, opts ...Option) ([]string, error) {
	src, err := readScript(ep.Script)
	if err != nil {
		return nil, err
	}
	proto, err := CompileSource(ep.Script, src)
	if err != nil {
		return nil, err
	}
	s := &Service{metrics: metrics.Discard(), hub: hub.New(), log: slog.New(slog.DiscardHandler), clock: RealClock{}}
	for _, opt := range opts {
		opt(s)
	}
	s.cluster = nil // a check never touches the cluster's data
	s.openStore(ep)
	s.named.clock = s.clock
	s.ctx, s.cancel = context.WithCancel(context.Background())
	defer s.wg.Wait()
	defer s.cancel()
	defer s.named.stopAll()
	gen := &generation{ep: ep, ctx: s.ctx, http: outbound.New(outbound.Policy(ep.HTTP)), modules: newModules(ep.Script, src, nil)}
	defer gen.http.Close()
	st := newState(s, gen, 0)
	gen.states = []*state{st}
	gen.done.Add(1)
	s.startWatchdog(gen)
	defer gen.done.Done() // stops the watchdog
	defer st.L.Close()
	if err := st.load(proto); err != nil {
		return nil, err
	}
	warnings := unknownHandlers(ep.Script, st.returned)
	if start {
		if err := st.callDirect(evStart); err != nil {
			return warnings, err
		}
	}
	return warnings, nil
}

// scriptHandlers are the names a script's table may give handlers.
var scriptHandlers = []string{"start", "connect", "message", "close", "reload", "timer", "http"}

// unknownHandlers warns of the functions in a script's returned table that
// no event calls, with the closest known name when it looks like a typo.
func unknownHandlers(script string, tbl *lua.LTable) []string {
	var out []string
	tbl.ForEach(func(k, v lua.LValue) {
		name, ok := k.(lua.LString)
		if _, fn := v.(*lua.LFunction); !ok || !fn || slices.Contains(scriptHandlers, string(name)) {
			return
		}
		msg := fmt.Sprintf("%s: %q is not a handler Moongate calls", script, string(name))
		if s := config.Suggest(string(name), scriptHandlers); s != "" {
			msg += fmt.Sprintf(" (did you mean %q?)", s)
		}
		out = append(out, msg)
	})
	slices.Sort(out)
	return out
}
