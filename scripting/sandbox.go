package scripting

import (
	lua "github.com/yuin/gopher-lua"
)

// Limits of what one Lua state may do.
const (
	callStackSize = 200     // nested calls; deeper recursion is an error
	registryMax   = 1 << 20 // value stack slots
)

// newSandboxedState returns a Lua state with only the libraries a service
// needs: no os, io, debug, package or channel library, and no way to load
// code or reach the filesystem (dofile, loadfile, load, loadstring, require
// and module are gone). print writes to the service log. The built-ins that
// gopher-lua runs in Go without a bound are replaced by bounded ones (see
// builtins_string.go and builtins_table.go), and setmetatable takes tables
// only.
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
	openBoundedString(L)
	openBoundedTable(L)
	return L
}
