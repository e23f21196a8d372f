// Package luatest is `moongate test`: it runs the *_test.lua files beside
// a config's services. Each test loads the real service in-process (the
// scripting runtime, a fresh store and rooms for every test, the
// endpoint's own settings) with a virtual clock, and drives simulated
// clients that go through the gateway's real client code over in-memory
// connections. docs/testing.md describes the Lua API test files use.
package luatest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/moongate/moongate/gateway/config"
	"github.com/moongate/moongate/scripting"
	"github.com/moongate/moongate/scripting/luaval"
	lua "github.com/yuin/gopher-lua"
)

// File is a test file and the endpoint whose script it tests.
type File struct {
	Path     string // as shown in the output and in file:line
	Endpoint config.Endpoint
}

// Options say what Run runs and how.
type Options struct {
	Config  *config.Config
	Paths   []string       // test files or folders; none: every endpoint's tests
	Run     *regexp.Regexp // only the tests whose names match; nil: all
	Verbose bool           // report every test, passing or not, and its log
	Out     io.Writer
	// Databases returns the databases lent to the service of one test, and
	// how to close them; nil: none.
	Databases func() (scripting.Databases, func(), error)
	// Timeout bounds the real time one test may take (DefaultTimeout when 0).
	Timeout time.Duration
}

// DefaultTimeout bounds the real time of one test when Options.Timeout is 0.
const DefaultTimeout = time.Minute

// Find returns the test files to run: those under paths (files, or
// folders searched for *_test.lua), or, with no paths, those beside each
// endpoint's script whose names start with the script's base name
// (chat.lua: chat_test.lua, chat_rooms_test.lua). Each is paired with the
// endpoint whose script is in its folder and whose base name starts its
// name (the longest such, when several do).
func Find(cfg *config.Config, paths []string) ([]File, error) {
	var names []string
	if len(paths) == 0 {
		for _, ep := range cfg.Endpoints {
			base := strings.TrimSuffix(filepath.Base(ep.Script), filepath.Ext(ep.Script))
			found, err := filepath.Glob(filepath.Join(filepath.Dir(ep.Script), globEscape(base)+"*_test.lua"))
			if err != nil {
				return nil, fmt.Errorf("finding the tests of %s: %w", ep.Script, err)
			}
			names = append(names, found...)
		}
	}
	for _, p := range paths {
		info, err := os.Stat(p)
		if err != nil {
			return nil, fmt.Errorf("test path: %w", err)
		}
		if !info.IsDir() {
			names = append(names, p)
			continue
		}
		err = filepath.WalkDir(p, func(path string, d os.DirEntry, err error) error {
			if err == nil && !d.IsDir() && strings.HasSuffix(path, "_test.lua") {
				names = append(names, path)
			}
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("test path %s: %w", p, err)
		}
	}
	var files []File
	seen := map[string]bool{}
	for _, name := range names {
		abs, err := filepath.Abs(name)
		if err != nil {
			return nil, fmt.Errorf("test file %s: %w", name, err)
		}
		if seen[abs] {
			continue
		}
		seen[abs] = true
		ep, err := endpointFor(cfg, abs)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", display(abs), err)
		}
		files = append(files, File{Path: display(abs), Endpoint: ep})
	}
	sort.SliceStable(files, func(i, j int) bool { return files[i].Path < files[j].Path })
	return files, nil
}

// globEscape escapes the characters filepath.Match treats specially.
func globEscape(s string) string {
	r := strings.NewReplacer(`*`, `\*`, `?`, `\?`, `[`, `\[`, `\`, `\\`)
	return r.Replace(s)
}

// display returns abs relative to the working folder when below it.
func display(abs string) string {
	wd, err := os.Getwd()
	if err != nil {
		return abs
	}
	if rel, err := filepath.Rel(wd, abs); err == nil && !strings.HasPrefix(rel, "..") {
		return rel
	}
	return abs
}

// endpointFor returns the endpoint whose script is beside the test file
// abs and whose base name its name starts with.
func endpointFor(cfg *config.Config, abs string) (config.Endpoint, error) {
	name := filepath.Base(abs)
	if !strings.HasSuffix(name, "_test.lua") {
		return config.Endpoint{}, errors.New("a test file's name ends in _test.lua")
	}
	best, bestLen := -1, -1
	for i, ep := range cfg.Endpoints {
		script, err := filepath.Abs(ep.Script)
		if err != nil || filepath.Dir(script) != filepath.Dir(abs) {
			continue
		}
		base := strings.TrimSuffix(filepath.Base(script), filepath.Ext(script))
		if strings.HasPrefix(name, base+"_") && len(base) > bestLen {
			best, bestLen = i, len(base)
		}
	}
	if best < 0 {
		return config.Endpoint{}, fmt.Errorf("no endpoint of %s runs a script beside it whose name starts it (chat.lua for chat_test.lua)", cfg.File)
	}
	return cfg.Endpoints[best], nil
}

// Run runs the files' tests, printing as `go test` does, and reports
// whether every test passed.
func Run(files []File, o Options) bool {
	ok := true
	for _, f := range files {
		if !runFile(f, o) {
			ok = false
		}
	}
	return ok
}

// testCase is a test function found in a file.
type testCase struct {
	name string
	line int
}

// runFile runs one file's tests and prints its summary line.
func runFile(f File, o Options) bool {
	begin := time.Now()
	cases, err := listTests(f.Path)
	if err != nil {
		fmt.Fprintf(o.Out, "%v\nFAIL\t%s [load error]\n", err, f.Path)
		return false
	}
	ran, passed := 0, true
	for _, tc := range cases {
		if o.Run != nil && !o.Run.MatchString(tc.name) {
			continue
		}
		ran++
		if !runTest(f, tc, o) {
			passed = false
		}
	}
	took := time.Since(begin).Seconds()
	switch {
	case !passed:
		fmt.Fprintf(o.Out, "FAIL\n")
		fmt.Fprintf(o.Out, "FAIL\t%s\t%.3fs\n", f.Path, took)
	case ran == 0:
		fmt.Fprintf(o.Out, "ok  \t%s\t%.3fs [no tests to run]\n", f.Path, took)
	default:
		if o.Verbose {
			fmt.Fprintf(o.Out, "PASS\n")
		}
		fmt.Fprintf(o.Out, "ok  \t%s\t%.3fs\n", f.Path, took)
	}
	return passed
}

// newTestState returns a Lua state for a test file: the standard
// libraries, json, and test(name, fn) registering into reg.
func newTestState(reg *[]testCase, fns map[string]*lua.LFunction) *lua.LState {
	L := lua.NewState()
	luaval.OpenJSON(L)
	L.SetGlobal("test", L.NewFunction(func(L *lua.LState) int {
		name := L.CheckString(1)
		fn := L.CheckFunction(2)
		if _, dup := fns[name]; dup {
			L.ArgError(1, fmt.Sprintf("a test named %q already exists", name))
		}
		fns[name] = fn
		*reg = append(*reg, testCase{name: name, line: fn.Proto.LineDefined})
		return 0
	}))
	return L
}

// load runs a test file's top level in a new state and returns the state
// and its tests in order: those given to test(name, fn), then the
// functions of the returned table whose names start with "test", in the
// order they are defined.
func load(path string) (*lua.LState, []testCase, map[string]*lua.LFunction, error) {
	var cases []testCase
	fns := map[string]*lua.LFunction{}
	L := newTestState(&cases, fns)
	fn, err := L.LoadFile(path)
	if err != nil {
		L.Close()
		return nil, nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	L.Push(fn)
	if err := L.PCall(0, 1, nil); err != nil {
		L.Close()
		return nil, nil, nil, fmt.Errorf("%s", errorText(err))
	}
	ret := L.Get(-1)
	L.Pop(1)
	var returned []testCase
	if tbl, ok := ret.(*lua.LTable); ok {
		tbl.ForEach(func(k, v lua.LValue) {
			name, isName := k.(lua.LString)
			f, isFn := v.(*lua.LFunction)
			if !isName || !isFn || !strings.HasPrefix(string(name), "test") {
				return
			}
			if _, dup := fns[string(name)]; dup {
				return
			}
			fns[string(name)] = f
			line := 0
			if f.Proto != nil {
				line = f.Proto.LineDefined
			}
			returned = append(returned, testCase{name: string(name), line: line})
		})
	}
	sort.Slice(returned, func(i, j int) bool {
		if returned[i].line != returned[j].line {
			return returned[i].line < returned[j].line
		}
		return returned[i].name < returned[j].name
	})
	return L, append(cases, returned...), fns, nil
}

// listTests returns a file's tests.
func listTests(path string) ([]testCase, error) {
	L, cases, _, err := load(path)
	if err != nil {
		return nil, err
	}
	L.Close()
	return cases, nil
}

// errorText returns what a Lua error says: a failure's message, or the
// error with its traceback.
func errorText(err error) string {
	var api *lua.ApiError
	if errors.As(err, &api) {
		if ud, ok := api.Object.(*lua.LUserData); ok {
			if f, ok := ud.Value.(*failure); ok {
				return f.msg
			}
		}
		msg := api.Object.String()
		if api.StackTrace != "" {
			msg += "\n" + api.StackTrace
		}
		return msg
	}
	return err.Error()
}

// runTest runs one test on a fresh service and prints its result.
func runTest(f File, tc testCase, o Options) bool {
	if o.Verbose {
		fmt.Fprintf(o.Out, "=== RUN   %s\n", tc.name)
	}
	begin := time.Now()
	timeout := o.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	lines, failed := execute(f, tc, o.Databases, timeout)
	took := time.Since(begin).Seconds()
	if failed {
		fmt.Fprintf(o.Out, "--- FAIL: %s (%.2fs)\n", tc.name, took)
	} else if o.Verbose {
		fmt.Fprintf(o.Out, "--- PASS: %s (%.2fs)\n", tc.name, took)
	}
	if failed || o.Verbose {
		for _, l := range lines {
			fmt.Fprintf(o.Out, "    %s\n", strings.ReplaceAll(l, "\n", "\n    "))
		}
	}
	return !failed
}

// execute runs one test: a fresh Lua state for the file, a fresh service
// for the endpoint with the databases lent to it. It returns what to print
// under the test and whether it failed.
func execute(f File, tc testCase, databases func() (scripting.Databases, func(), error), timeout time.Duration) (lines []string, failed bool) {
	sink := &logSink{}
	L, _, fns, err := load(f.Path)
	if err != nil {
		return []string{err.Error()}, true
	}
	defer L.Close()
	var opts []scripting.Option
	var dbs *outages
	if databases != nil {
		lent, closeDBs, err := databases()
		if err != nil {
			return []string{fmt.Sprintf("databases: %v", err)}, true
		}
		defer closeDBs()
		dbs = &outages{lent: lent}
		opts = append(opts, scripting.WithDatabases(dbs))
	}
	clock := NewVirtualClock(time.Now().Truncate(time.Second))
	h, err := NewHarness(f.Endpoint, clock, slog.New(handler{sink: sink}), opts...)
	if err != nil {
		return []string{fmt.Sprintf("starting %s: %v", f.Endpoint.Script, err)}, true
	}
	tt := &test{name: tc.name, L: L, h: h, logs: sink, outages: dbs}
	tt.install(L)
	L.SetGlobal("print", L.NewFunction(func(L *lua.LState) int { // as t:log
		sink.add(where(L) + joinArgs(L, 1))
		return 0
	}))
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	L.SetContext(ctx)
	L.Push(fns[tc.name])
	L.Push(tt.value(L))
	if err := L.PCall(1, 0, nil); err != nil {
		if ctx.Err() != nil {
			sink.add(fmt.Sprintf("the test ran past its timeout of %s", timeout))
		} else {
			sink.add(errorText(err))
		}
		failed = true
	} else if err := h.Settle(); err != nil {
		sink.add(err.Error())
		failed = true
	}
	h.Close()
	for _, e := range sink.takeErrors() {
		sink.add("script error " + e)
		failed = true
	}
	return sink.take(), failed
}
