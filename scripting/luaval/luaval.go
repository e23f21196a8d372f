// Package luaval converts values between Lua and Go and provides the `json`
// module scripts use. The Go core keeps shared state (client attributes,
// stored data) as plain Go values, so conversions are exact and reject what
// cannot cross: functions, userdata, cycles, excessive nesting, and copies
// larger than MaxBytes.
package luaval

import (
	lua "github.com/yuin/gopher-lua"
)

// MaxDepth bounds the nesting of tables and JSON documents.
const MaxDepth = 64

// MaxBytes bounds what one call may produce: the JSON text json.encode
// returns, the size of a Go copy of a Lua value (ToGo) and of the Lua
// values Decode builds. A table reached twice counts twice.
const MaxBytes = 16 << 20

// tableCost is what a table counts against MaxBytes besides its entries
// (in json.encode's text too): about what a Go map or a Lua table costs.
// It keeps a graph of many small shared tables from taking seconds to
// reach the limit.
const tableCost = 64

// nullValue marks the userdata that stands for JSON null.
type nullValue struct{}

// nullRegistryKey is where a state keeps its own null value.
const nullRegistryKey = "moongate.json.null"

// Null returns L's value for JSON null (json.null in scripts). Each state
// has its own, so nothing a script does to it can reach another state; the
// sandbox refuses setmetatable on it.
func Null(L *lua.LState) lua.LValue {
	reg := L.Get(lua.RegistryIndex).(*lua.LTable)
	if v, ok := reg.RawGetString(nullRegistryKey).(*lua.LUserData); ok {
		return v
	}
	v := &lua.LUserData{Value: nullValue{}, Metatable: lua.LNil}
	reg.RawSetString(nullRegistryKey, v)
	return v
}

// IsNull reports whether v is a state's JSON null.
func IsNull(v lua.LValue) bool {
	ud, ok := v.(*lua.LUserData)
	if !ok {
		return false
	}
	_, ok = ud.Value.(nullValue)
	return ok
}

// arrayTypeKey marks the metatable that makes a table a JSON array.
const arrayTypeKey = "__jsontype"

// arrayMetatable returns L's shared metatable for array-marked tables.
func arrayMetatable(L *lua.LState) *lua.LTable {
	const registryKey = "moongate.json.array"
	if mt, ok := L.GetField(L.Get(lua.RegistryIndex), registryKey).(*lua.LTable); ok {
		return mt
	}
	mt := L.NewTable()
	mt.RawSetString(arrayTypeKey, lua.LString("array"))
	L.SetField(L.Get(lua.RegistryIndex), registryKey, mt)
	return mt
}

// Array marks t so that it encodes as a JSON array, even when empty.
func Array(L *lua.LState, t *lua.LTable) *lua.LTable {
	t.Metatable = arrayMetatable(L)
	return t
}

// markedArray reports whether t carries the array mark.
func markedArray(t *lua.LTable) bool {
	mt, ok := t.Metatable.(*lua.LTable)
	return ok && mt.RawGetString(arrayTypeKey) == lua.LString("array")
}

// sequenceLength returns n when t's keys are exactly 1..n (n >= 1), else -1.
func sequenceLength(t *lua.LTable) int {
	n := t.MaxN()
	if n == 0 {
		return -1
	}
	count := 0
	isSeq := true
	t.ForEach(func(k, _ lua.LValue) {
		count++
		if num, ok := k.(lua.LNumber); !ok || float64(num) != float64(int(num)) || int(num) < 1 || int(num) > n {
			isSeq = false
		}
	})
	if !isSeq || count != n {
		return -1
	}
	return n
}
