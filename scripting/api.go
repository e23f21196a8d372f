package scripting

import (
	"fmt"
	"log/slog"
	"strings"

	"github.com/moongate/moongate/gateway/config"
	"github.com/moongate/moongate/scripting/luaval"
	lua "github.com/yuin/gopher-lua"
)

// installAPI gives the state every module scripts can use. The modules are
// globals: client methods (on the client values handlers receive), rooms,
// clients, timer, store, db, http, secrets, json, log, clock, options and
// service; and require, for the script's own modules (modules.go).
func (st *state) installAPI() {
	openCoroutines(st.L)
	st.openRequire()
	st.openClient()
	st.openRooms()
	st.openTimer()
	st.openStore()
	st.openDB()
	st.openHTTP()
	st.openSecrets()
	luaval.OpenJSON(st.L)
	st.openLog()
	st.openClock()
	st.openService()
}

// setModule installs a global table of functions.
func (st *state) setModule(name string, funcs map[string]lua.LGFunction) *lua.LTable {
	t := st.L.NewTable()
	st.L.SetFuncs(t, funcs)
	st.L.SetGlobal(name, t)
	return t
}

// openLog installs `log` (debug, info, warn, error) and routes print to it.
func (st *state) openLog() {
	levels := map[string]slog.Level{"debug": slog.LevelDebug, "info": slog.LevelInfo,
		"warn": slog.LevelWarn, "error": slog.LevelError}
	funcs := make(map[string]lua.LGFunction, len(levels))
	for name, level := range levels {
		funcs[name] = func(L *lua.LState) int {
			st.logAt(L, level, L.CheckString(1), L.OptTable(2, nil))
			return 0
		}
	}
	st.setModule("log", funcs)
	st.L.SetGlobal("print", st.L.NewFunction(func(L *lua.LState) int {
		var b strings.Builder
		for i := 1; i <= L.GetTop(); i++ {
			s := L.ToStringMeta(L.Get(i)).String()
			if b.Len()+len(s)+1 > luaval.MaxBytes {
				b.WriteString("...(truncated)")
				break
			}
			if i > 1 {
				b.WriteByte('\t')
			}
			b.WriteString(s)
		}
		st.logAt(L, slog.LevelInfo, b.String(), nil)
		return 0
	}))
}

// logAt writes a script's log line with its position and optional fields.
// The fields of one line are copied within luaval.MaxBytes together; the
// ones past it are left out and the line says so.
func (st *state) logAt(L *lua.LState, level slog.Level, msg string, fields *lua.LTable) {
	attrs := []any{"state", st.index, "at", strings.TrimSuffix(L.Where(1), ":")}
	if fields != nil {
		left := luaval.MaxBytes - len(msg)
		fields.ForEach(func(k, v lua.LValue) {
			if left <= 0 {
				return
			}
			key := k.String()
			g, used, err := luaval.ToGoWithin(L.Context(), v, left-len(key))
			if left -= len(key) + used; err != nil {
				g = logFallback(v, err)
			}
			attrs = append(attrs, key, g)
		})
		if left <= 0 {
			attrs = append(attrs, "truncated", fmt.Sprintf("fields past %d bytes left out", luaval.MaxBytes))
		}
	}
	st.svc.log.Log(st.svc.ctx, level, msg, attrs...)
}

// logFallback is what the log shows of a field that cannot be copied: what
// Lua's tostring says, or the error for a string over the limit.
func logFallback(v lua.LValue, err error) string {
	if _, ok := v.(lua.LString); ok {
		return "(" + err.Error() + ")"
	}
	return v.String()
}

// openClock installs `clock`: now (Unix seconds), millis (Unix milliseconds)
// and mono (seconds on a monotonic clock, for measuring intervals).
func (st *state) openClock() {
	c := st.svc.clock
	origin := c.Now()
	st.setModule("clock", map[string]lua.LGFunction{
		"now": func(L *lua.LState) int {
			L.Push(lua.LNumber(float64(c.Now().UnixMicro()) / 1e6))
			return 1
		},
		"millis": func(L *lua.LState) int {
			L.Push(lua.LNumber(c.Now().UnixMilli()))
			return 1
		},
		"mono": func(L *lua.LState) int {
			L.Push(lua.LNumber(c.Now().Sub(origin).Seconds()))
			return 1
		},
	})
}

// openService installs `options` (the endpoint's options, as a table) and
// `service` (path, state index from 1, number of states, and auth: "none",
// "optional" or "required" sign-in).
func (st *state) openService() {
	opts, err := luaval.FromGo(st.L, map[string]any(st.gen.ep.Options))
	if err != nil || st.gen.ep.Options == nil {
		opts = st.L.NewTable()
	}
	st.L.SetGlobal("options", opts)
	svc := st.L.NewTable()
	svc.RawSetString("path", lua.LString(st.gen.ep.Path))
	svc.RawSetString("state", lua.LNumber(st.index+1))
	svc.RawSetString("states", lua.LNumber(max(st.gen.ep.States, 1)))
	svc.RawSetString("auth", lua.LString(authMode(st.gen.ep.Auth)))
	dbs := st.L.CreateTable(len(st.gen.ep.Databases), 0)
	for _, name := range st.gen.ep.Databases {
		dbs.Append(lua.LString(name))
	}
	svc.RawSetString("databases", luaval.Array(st.L, dbs))
	st.L.SetGlobal("service", svc)
}

// authMode names an endpoint's sign-in mode for scripts.
func authMode(a *config.Auth) string {
	switch {
	case a == nil:
		return "none"
	case a.Required:
		return "required"
	}
	return "optional"
}
