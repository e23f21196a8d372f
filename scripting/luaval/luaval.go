// Package luaval converts values between Lua and Go and provides the `json`
// module scripts use. The Go core keeps shared state (client attributes,
// stored data) as plain Go values, so conversions are exact and reject what
// cannot cross: functions, userdata, cycles, excessive nesting.
package luaval

import (
	lua "github.com/yuin/gopher-lua"
)

// MaxDepth bounds the nesting of tables and JSON documents.
const MaxDepth = 64

// Null is the Lua value for JSON null (json.null in scripts). It is one
// value shared by every state, so it compares equal to itself everywhere.
var Null lua.LValue = &lua.LUserData{Value: nullValue{}}

type nullValue struct{}

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
