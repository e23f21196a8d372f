package scripting

import (
	"time"

	"github.com/moongate/moongate/scripting/luaval"
	lua "github.com/yuin/gopher-lua"
)

// openStore installs the `store` module: the service's key-value store in
// Go, shared by all its states. Values are strings, numbers, booleans or
// tables of those; a ttl is in seconds (absent or 0: no expiry).
//
//	store.get(key) -> value | nil
//	store.set(key, value [, ttl])
//	store.add(key, value [, ttl]) -> true if key was absent and is now set
//	store.incr(key [, by [, ttl]]) -> the new whole number (ttl applies when the key is created)
//	store.del(key [, if_value]) -> whether a value was removed (only if equal to if_value, when given)
func (st *state) openStore() {
	s := st.svc.store
	st.setModule("store", map[string]lua.LGFunction{
		"get": func(L *lua.LState) int {
			v, _ := s.Get(L.CheckString(1))
			lv, err := luaval.FromGo(L, v)
			if err != nil {
				L.RaiseError("store.get: %v", err)
			}
			L.Push(lv)
			return 1
		},
		"set": func(L *lua.LState) int {
			if err := s.Set(L.CheckString(1), storeValue(L, 2), ttlArg(L, 3)); err != nil {
				L.RaiseError("store.set: %v", err)
			}
			return 0
		},
		"add": func(L *lua.LState) int {
			ok, err := s.Add(L.CheckString(1), storeValue(L, 2), ttlArg(L, 3))
			if err != nil {
				L.RaiseError("store.add: %v", err)
			}
			L.Push(lua.LBool(ok))
			return 1
		},
		"incr": func(L *lua.LState) int {
			n, err := s.Incr(L.CheckString(1), int64(L.OptInt64(2, 1)), ttlArg(L, 3))
			if err != nil {
				L.RaiseError("store.incr: %v", err)
			}
			L.Push(lua.LNumber(n))
			return 1
		},
		"del": func(L *lua.LState) int {
			key := L.CheckString(1)
			if L.GetTop() < 2 {
				L.Push(lua.LBool(s.Delete(key)))
				return 1
			}
			L.Push(lua.LBool(s.DeleteIf(key, storeValue(L, 2))))
			return 1
		},
	})
}

// storeValue converts argument n for the store.
func storeValue(L *lua.LState, n int) any {
	v, err := luaval.ToGoFor(L, L.CheckAny(n))
	if err != nil {
		L.ArgError(n, err.Error())
	}
	return v
}

// ttlArg reads an optional time to live in seconds.
func ttlArg(L *lua.LState, n int) time.Duration {
	secs := float64(L.OptNumber(n, 0))
	if secs < 0 {
		L.ArgError(n, "ttl must not be negative")
	}
	return time.Duration(secs * float64(time.Second))
}
