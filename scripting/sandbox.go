package scripting

import (
	"strings"

	lua "github.com/yuin/gopher-lua"
)

// Limits of what one Lua state may do.
const (
	callStackSize = 200     // nested calls; deeper recursion is an error
	registryMax   = 1 << 20 // value stack slots
	maxStringRep  = 16 << 20
)

// newSandboxedState returns a Lua state with only the libraries a service
// needs: no os, io, debug, package or channel library, and no way to load
// code or reach the filesystem (dofile, loadfile, load, loadstring, require
// and module are gone). print writes to the service log.
func newSandboxedState() *lua.LState {
	L := lua.NewState(lua.Options{
		SkipOpenLibs:    true,
		CallStackSize:   callStackSize,
		RegistrySize:    1024,
		RegistryMaxSize: registryMax,
	})
	for _, lib := range []struct {
		name string
		open lua.LGFunction
	}{
		{lua.BaseLibName, lua.OpenBase},
		{lua.TabLibName, lua.OpenTable},
		{lua.StringLibName, lua.OpenString},
		{lua.MathLibName, lua.OpenMath},
		{lua.CoroutineLibName, lua.OpenCoroutine},
	} {
		L.Push(L.NewFunction(lib.open))
		L.Push(lua.LString(lib.name))
		L.Call(1, 0)
	}
	for _, name := range []string{"dofile", "loadfile", "load", "loadstring", "require", "module",
		"collectgarbage", "_printregs", "newproxy"} {
		L.SetGlobal(name, lua.LNil)
	}
	L.SetGlobal("package", lua.LNil)
	if str, ok := L.GetGlobal("string").(*lua.LTable); ok {
		str.RawSetString("rep", L.NewFunction(boundedRep))
	}
	return L
}

// boundedRep is string.rep with a ceiling on the size of its result.
func boundedRep(L *lua.LState) int {
	s := L.CheckString(1)
	n := L.CheckInt(2)
	if n <= 0 || s == "" {
		L.Push(lua.LString(""))
		return 1
	}
	if n > maxStringRep/len(s) {
		L.RaiseError("string.rep: result would exceed %d bytes", maxStringRep)
	}
	L.Push(lua.LString(strings.Repeat(s, n)))
	return 1
}
