package scripting

import (
	"context"
	"time"

	"github.com/moongate/moongate/gateway/store"

	"github.com/moongate/moongate/scripting/luaval"
	lua "github.com/yuin/gopher-lua"
)

// openStore installs the `store` module: the service's key-value store in
// Go, shared by all its states. Values are strings, numbers, booleans or
// tables of those; a ttl is in seconds (absent or 0: no expiry).
//
//	store.get(key) -> value | nil
//	store.set(key, value [, ttl | {ttl=, owner=, if_value=}]) -> with if_value, whether it was set
//	store.add(key, value [, ttl | {ttl=, owner=}]) -> true if key was absent and is now set
//	store.incr(key [, by [, ttl]]) -> the new whole number (ttl applies when the key is created)
//	store.del(key [, if_value]) -> whether a value was removed (only if equal to if_value, when given)
//	store.keys(prefix [, limit]) -> the keys starting with prefix, sorted (at most 1000)
//	store.ttl(key) -> seconds left, -1 when it never expires, nil when absent
//	store.expire(key, seconds) -> whether the key exists (0: never expires)
//	store.push(key, value, max) -> the list's length, keeping its last max entries
//	store.range(key [, from [, to]]) -> entries from..to (1-based; negative from the end)
//	store.hincr(key, field [, by]) -> the field's new whole number
//
// A key set or added with {owner = client} is removed when that client
// disconnects (a nick claim, a lock held by a connection).
func (st *state) openStore() {
	s := st.svc.kv
	st.setModule("store", map[string]lua.LGFunction{
		"get": func(L *lua.LState) int {
			var v any
			st.sharedCall(L, "store.get", func(ctx context.Context) (err error) {
				v, _, err = s.Get(ctx, L.CheckString(1))
				return err
			})
			lv, err := luaval.FromGo(L, v)
			if err != nil {
				L.RaiseError("store.get: %v", err)
			}
			L.Push(lv)
			return 1
		},
		"set": func(L *lua.LState) int {
			key, value, o := L.CheckString(1), storeValue(L, 2), setOptions(L, 3)
			if o.ifValue != nil {
				var ok bool
				st.sharedCall(L, "store.set", func(ctx context.Context) (err error) {
					ok, err = s.SetIf(ctx, key, value, o.ifValue, o.ttl)
					return err
				})
				L.Push(lua.LBool(ok))
				return 1
			}
			st.sharedCall(L, "store.set", func(ctx context.Context) error {
				return s.Set(ctx, key, value, o.ttl, o.owner)
			})
			return 0
		},
		"add": func(L *lua.LState) int {
			key, value, o := L.CheckString(1), storeValue(L, 2), setOptions(L, 3)
			var ok bool
			st.sharedCall(L, "store.add", func(ctx context.Context) (err error) {
				ok, err = s.Add(ctx, key, value, o.ttl, o.owner)
				return err
			})
			L.Push(lua.LBool(ok))
			return 1
		},
		"keys": func(L *lua.LState) int {
			prefix, limit := L.CheckString(1), L.OptInt(2, store.MaxKeysListed)
			var keys []string
			st.sharedCall(L, "store.keys", func(ctx context.Context) (err error) {
				keys, err = s.Keys(ctx, prefix, limit)
				return err
			})
			t := L.CreateTable(len(keys), 0)
			for _, k := range keys {
				t.Append(lua.LString(k))
			}
			L.Push(t)
			return 1
		},
		"ttl": func(L *lua.LState) int {
			key := L.CheckString(1)
			var left time.Duration
			var ok bool
			st.sharedCall(L, "store.ttl", func(ctx context.Context) (err error) {
				left, ok, err = s.TTL(ctx, key)
				return err
			})
			switch {
			case !ok:
				L.Push(lua.LNil)
			case left == 0:
				L.Push(lua.LNumber(-1))
			default:
				L.Push(lua.LNumber(left.Seconds()))
			}
			return 1
		},
		"expire": func(L *lua.LState) int {
			key, ttl := L.CheckString(1), ttlArg(L, 2)
			var ok bool
			st.sharedCall(L, "store.expire", func(ctx context.Context) (err error) {
				ok, err = s.Expire(ctx, key, ttl)
				return err
			})
			L.Push(lua.LBool(ok))
			return 1
		},
		"push": func(L *lua.LState) int {
			key, value, keep := L.CheckString(1), storeValue(L, 2), L.CheckInt(3)
			var n int
			st.sharedCall(L, "store.push", func(ctx context.Context) (err error) {
				n, err = s.Push(ctx, key, value, keep)
				return err
			})
			L.Push(lua.LNumber(n))
			return 1
		},
		"range": func(L *lua.LState) int {
			key, from, to := L.CheckString(1), L.OptInt(2, 1), L.OptInt(3, -1)
			var entries []any
			st.sharedCall(L, "store.range", func(ctx context.Context) (err error) {
				entries, err = s.Range(ctx, key, from, to)
				return err
			})
			lv, err := luaval.FromGo(L, entries)
			if err != nil {
				L.RaiseError("store.range: %v", err)
			}
			if lv == lua.LNil {
				lv = L.NewTable()
			}
			L.Push(luaval.Array(L, lv.(*lua.LTable)))
			return 1
		},
		"hincr": func(L *lua.LState) int {
			key, field, by := L.CheckString(1), L.CheckString(2), L.OptInt64(3, 1)
			var n int64
			st.sharedCall(L, "store.hincr", func(ctx context.Context) (err error) {
				n, err = s.HIncr(ctx, key, field, int64(by))
				return err
			})
			L.Push(lua.LNumber(n))
			return 1
		},
		"incr": func(L *lua.LState) int {
			key, by, ttl := L.CheckString(1), int64(L.OptInt64(2, 1)), ttlArg(L, 3)
			var n int64
			st.sharedCall(L, "store.incr", func(ctx context.Context) (err error) {
				n, err = s.Incr(ctx, key, by, ttl)
				return err
			})
			L.Push(lua.LNumber(n))
			return 1
		},
		"del": func(L *lua.LState) int {
			key := L.CheckString(1)
			var want any
			conditional := L.GetTop() >= 2
			if conditional {
				want = storeValue(L, 2)
			}
			var ok bool
			st.sharedCall(L, "store.del", func(ctx context.Context) (err error) {
				if conditional {
					ok, err = s.DeleteIf(ctx, key, want)
				} else {
					ok, err = s.Delete(ctx, key)
				}
				return err
			})
			L.Push(lua.LBool(ok))
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

// setOpts are the options of store.set and store.add.
type setOpts struct {
	ttl     time.Duration
	owner   string // a client's id: the key goes when it disconnects
	ifValue any    // set only if the current value equals it
}

// setOptions reads argument n of store.set/add: a ttl in seconds, or a
// table {ttl =, owner = client, if_value =}.
func setOptions(L *lua.LState, n int) setOpts {
	t, ok := L.Get(n).(*lua.LTable)
	if !ok {
		return setOpts{ttl: ttlArg(L, n)}
	}
	var o setOpts
	if secs, ok := t.RawGetString("ttl").(lua.LNumber); ok {
		if secs < 0 {
			L.ArgError(n, "ttl must not be negative")
		}
		o.ttl = time.Duration(float64(secs) * float64(time.Second))
	}
	if owner := t.RawGetString("owner"); owner != lua.LNil {
		c, ok := clientOf(owner)
		if !ok {
			L.ArgError(n, "owner must be a client")
		}
		o.owner = c.ID()
	}
	if old := t.RawGetString("if_value"); old != lua.LNil {
		v, err := luaval.ToGoFor(L, old)
		if err != nil {
			L.ArgError(n, "if_value: "+err.Error())
		}
		o.ifValue = v
	}
	return o
}
