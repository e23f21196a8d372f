package scripting

import (
	"sort"

	"github.com/moongate/moongate/scripting/luaval"

	lua "github.com/yuin/gopher-lua"
)

// The table and base functions gopher-lua runs in Go without a bound, and
// the metatable functions, which here refuse values the runtime provides.

// openBoundedTable replaces unpack, table.concat, table.sort, setmetatable
// and getmetatable in L.
func openBoundedTable(L *lua.LState) {
	L.SetGlobal("unpack", L.NewFunction(baseUnpack))
	L.SetGlobal("setmetatable", L.NewFunction(baseSetMetatable))
	L.SetGlobal("getmetatable", L.NewFunction(baseGetMetatable))
	if tbl, ok := L.GetGlobal("table").(*lua.LTable); ok {
		tbl.RawSetString("concat", L.NewFunction(tableConcat))
		tbl.RawSetString("sort", L.NewFunction(tableSort))
	}
}

// baseUnpack is unpack returning at most maxResults values.
func baseUnpack(L *lua.LState) int {
	t := L.CheckTable(1)
	i := L.OptInt(2, 1)
	j := L.OptInt(3, t.Len())
	if i > j {
		return 0
	}
	if j-i >= maxResults || j-i < 0 { // the second: an overflow
		L.RaiseError("too many results to unpack (at most %d)", maxResults)
	}
	for k := i; k <= j; k++ {
		L.Push(t.RawGetInt(k))
	}
	return j - i + 1
}

// baseSetMetatable is setmetatable for tables only, as in Lua 5.1: a script
// cannot give a metatable to userdata the runtime provides (a client,
// json.null) or to every string, number or boolean at once.
func baseSetMetatable(L *lua.LState) int {
	t := L.CheckTable(1)
	mt := L.Get(2)
	if mt.Type() != lua.LTNil && mt.Type() != lua.LTTable {
		L.ArgError(2, "nil or table expected")
	}
	if old, ok := t.Metatable.(*lua.LTable); ok && old.RawGetString("__metatable") != lua.LNil {
		L.RaiseError("cannot change a protected metatable")
	}
	t.Metatable = mt
	L.SetTop(1)
	return 1
}

// baseGetMetatable is getmetatable, except that the metatables of userdata
// (which only the runtime makes) are not handed out: nil instead.
func baseGetMetatable(L *lua.LState) int {
	v := L.CheckAny(1)
	if v.Type() == lua.LTUserData {
		L.Push(lua.LNil)
		return 1
	}
	L.Push(L.GetMetatable(v))
	return 1
}

// tableConcat is table.concat (Lua 5.1): it measures the result before it
// builds it, and refuses one longer than maxString.
func tableConcat(L *lua.LState) int {
	t := L.CheckTable(1)
	sep := L.OptString(2, "")
	i := L.OptInt(3, 1)
	j := L.OptInt(4, t.Len())
	if i > j {
		L.Push(lua.LString(""))
		return 1
	}
	stop := luaval.NewStopper(L.Context())
	parts := make([]string, 0, min(j-i+1, 1024))
	size := 0
	for k := i; k <= j; k++ {
		if err := stop.Step(); err != nil {
			L.RaiseError("table.concat interrupted: %v", err)
		}
		s, ok := concatField(t.RawGetInt(k))
		if !ok {
			L.RaiseError("invalid value (at index %d) in table for 'concat'", k)
		}
		if k < j {
			size += len(sep)
		}
		size += len(s)
		if size > maxString || size < 0 {
			L.RaiseError("table.concat: result would exceed %d bytes", maxString)
		}
		parts = append(parts, s)
	}
	b := make([]byte, 0, size)
	for k, s := range parts {
		if k > 0 {
			b = append(b, sep...)
		}
		b = append(b, s...)
	}
	L.Push(lua.LString(b))
	return 1
}

// concatField is a table.concat element as a string: strings and numbers
// only.
func concatField(v lua.LValue) (string, bool) {
	switch v := v.(type) {
	case lua.LString:
		return string(v), true
	case lua.LNumber:
		return v.String(), true
	}
	return "", false
}

// tableSort is table.sort, interrupted when the handler's context ends
// (the comparisons of a big table run in Go otherwise).
func tableSort(L *lua.LState) int {
	t := L.CheckTable(1)
	s := &sorter{L: L, stop: luaval.NewStopper(L.Context())}
	if L.GetTop() >= 2 && L.Get(2) != lua.LNil {
		s.less = L.CheckFunction(2)
	}
	n := t.Len()
	s.values = make([]lua.LValue, n)
	for i := range n {
		s.values[i] = t.RawGetInt(i + 1)
	}
	sort.Sort(s)
	for i, v := range s.values {
		t.RawSetInt(i+1, v)
	}
	return 0
}

// sorter sorts the values of a table with the < operator or a function.
type sorter struct {
	L      *lua.LState
	less   *lua.LFunction
	values []lua.LValue
	stop   luaval.Stopper
}

func (s *sorter) Len() int      { return len(s.values) }
func (s *sorter) Swap(i, j int) { s.values[i], s.values[j] = s.values[j], s.values[i] }

func (s *sorter) Less(i, j int) bool {
	if err := s.stop.Step(); err != nil {
		s.L.RaiseError("table.sort interrupted: %v", err)
	}
	if s.less == nil {
		return s.L.LessThan(s.values[i], s.values[j])
	}
	s.L.CallByParam(lua.P{Fn: s.less, NRet: 1, Protect: false}, s.values[i], s.values[j])
	r := s.L.Get(-1)
	s.L.Pop(1)
	return lua.LVAsBool(r)
}
