package scripting

import (
	lua "github.com/yuin/gopher-lua"
)

// Coroutines run under the budget of the handler that resumes them, not of
// the one that created them. gopher-lua gives a new coroutine a context
// derived from its creator's: a coroutine kept in a global then failed
// forever with "context canceled" once any handler of its state had
// overrun its budget, and every coroutine created stayed registered with
// the state's context. Here a coroutine is created with no context and
// handed the resumer's at each resume (coroutine.wrap included, which
// gopher-lua resumes internally).
//
// gopher-lua also cannot yield across a pcall (neither can Lua 5.1): a
// yield inside pcall inside a coroutine crashed inside the VM. Such a
// yield now raises a clear error instead.

// coroutines holds what the wrappers need: the library's own functions
// and, per running coroutine, how many pcalls deep it is.
type coroutines struct {
	create, resume, yield lua.LGFunction
	pcall, xpcall         lua.LGFunction
	protected             map[*lua.LState]int
}

// openCoroutines replaces coroutine.create, resume, wrap and yield, pcall
// and xpcall with the wrappers described above.
func openCoroutines(L *lua.LState) {
	lib, ok := L.GetGlobal(lua.CoroutineLibName).(*lua.LTable)
	if !ok {
		return
	}
	co := &coroutines{
		create:    goFunction(lib.RawGetString("create")),
		resume:    goFunction(lib.RawGetString("resume")),
		yield:     goFunction(lib.RawGetString("yield")),
		pcall:     goFunction(L.GetGlobal("pcall")),
		xpcall:    goFunction(L.GetGlobal("xpcall")),
		protected: make(map[*lua.LState]int),
	}
	L.SetFuncs(lib, map[string]lua.LGFunction{
		"create": co.createThread,
		"resume": co.resumeThread,
		"wrap":   co.wrap,
		"yield":  co.yieldThread,
	})
	L.SetGlobal("pcall", L.NewFunction(co.protect(co.pcall)))
	L.SetGlobal("xpcall", L.NewFunction(co.protect(co.xpcall)))
}

// goFunction returns the Go function behind a library function.
func goFunction(v lua.LValue) lua.LGFunction {
	fn, ok := v.(*lua.LFunction)
	if !ok || !fn.IsG {
		panic("scripting: expected a Go library function")
	}
	return fn.GFunction
}

// createThread is coroutine.create, with no context of the creator's.
func (co *coroutines) createThread(L *lua.LState) int {
	ctx := L.RemoveContext()
	defer func() {
		if ctx != nil {
			L.SetContext(ctx)
		}
	}()
	return co.create(L)
}

// resumeThread is coroutine.resume: the coroutine runs with the resumer's
// context, so under the running handler's budget.
func (co *coroutines) resumeThread(L *lua.LState) int {
	th := L.CheckThread(1)
	if ctx := L.Context(); ctx != nil {
		th.SetContext(ctx)
	}
	return co.resume(L)
}

// wrap is coroutine.wrap: a function that resumes the coroutine with its
// arguments and returns what it yields, raising its errors.
func (co *coroutines) wrap(L *lua.LState) int {
	L.CheckFunction(1)
	L.SetTop(1)
	co.createThread(L)
	th := L.CheckThread(2)
	L.Push(L.NewFunction(func(L *lua.LState) int {
		L.Insert(th, 1)
		n := co.resumeThread(L)
		results := L.GetTop() - n
		if L.Get(results+1) == lua.LFalse {
			L.Error(L.Get(results+2), 0)
		}
		return n - 1
	}))
	return 1
}

// yieldThread is coroutine.yield, refused inside a pcall.
func (co *coroutines) yieldThread(L *lua.LState) int {
	if co.protected[L] > 0 {
		L.RaiseError("attempt to yield across pcall: a coroutine cannot yield inside pcall or xpcall")
	}
	return co.yield(L)
}

// protect wraps pcall or xpcall to count how deep in them each coroutine is.
func (co *coroutines) protect(call lua.LGFunction) lua.LGFunction {
	return func(L *lua.LState) int {
		co.protected[L]++
		defer func() {
			if co.protected[L]--; co.protected[L] == 0 {
				delete(co.protected, L)
			}
		}()
		return call(L)
	}
}
