package luaval

import (
	lua "github.com/yuin/gopher-lua"
)

// OpenJSON installs the `json` module in L:
//
//	json.encode(v) -> string            raises an error for a value JSON cannot hold
//	                                    or a text longer than MaxBytes
//	json.decode(s) -> value | nil, err  never raises for bad input
//	json.array([t]) -> t                marks t (or a new table) as an array
//	json.null                           the value of JSON null
func OpenJSON(L *lua.LState) {
	var scratch []byte
	m := L.NewTable()
	L.SetFuncs(m, map[string]lua.LGFunction{
		"encode": func(L *lua.LState) int {
			out, err := EncodeContext(L.Context(), scratch[:0], L.CheckAny(1))
			if err != nil {
				L.RaiseError("json.encode: %v", err)
			}
			L.Push(lua.LString(out))
			if cap(out) <= 64<<10 {
				scratch = out
			}
			return 1
		},
		"decode": func(L *lua.LState) int {
			v, err := Decode(L, []byte(L.CheckString(1)))
			if err != nil {
				L.Push(lua.LNil)
				L.Push(lua.LString(err.Error()))
				return 2
			}
			L.Push(v)
			return 1
		},
		"array": func(L *lua.LState) int {
			t := L.OptTable(1, nil)
			if t == nil {
				t = L.NewTable()
			}
			L.Push(Array(L, t))
			return 1
		},
	})
	m.RawSetString("null", Null(L))
	L.SetGlobal("json", m)
}
