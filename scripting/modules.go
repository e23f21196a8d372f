package scripting

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/moongate/moongate/gateway/safefile"
	lua "github.com/yuin/gopher-lua"
)

// MaxModules bounds the modules one version of a service loads.
const MaxModules = 1000

// modules are the Lua modules one generation of a service loads with
// require: the files under the script's folder (and only there), each read
// and compiled once for the generation and shared by its states, which
// each run a module's top level once (see openRequire). The set is also
// the generation's record of the files it depends on: the watcher reloads
// the service when one of them changes, and a reload that finds them all
// (and the script) unchanged restarts nothing.
type modules struct {
	dir    string     // the service's folder: the script's
	script [32]byte   // the script's content
	seen   func()     // called when a module is loaded for the first time; may be nil
	mu     sync.Mutex // guards byName; held while a module is read and compiled
	byName map[string]*module
}

// module is one module of a generation: compiled, or why it cannot be.
type module struct {
	name  string
	rel   string   // the file, slash-separated, under the service's folder
	path  string   // the file as errors and the watcher name it
	read  bool     // the file was read (it may still not compile)
	sum   [32]byte // its content, when read
	proto *lua.FunctionProto
	err   error // why it cannot be loaded (a *ScriptError when it does not compile)
}

// newModules returns the (empty) module set of a generation running the
// script at script, whose content is src.
func newModules(script string, src []byte, seen func()) *modules {
	return &modules{dir: filepath.Dir(script), script: sha256.Sum256(src), seen: seen, byName: map[string]*module{}}
}

// errNoModule is a module name with no file.
var errNoModule = errors.New("no such module")

// load returns the module called name, reading and compiling it the first
// time. A module whose file exists but cannot be read or compiled is kept
// and returned with its error (it is still a file the generation depends
// on); a name with no file is not kept (nil, error).
func (ms *modules) load(name string) (*module, error) {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	if m, ok := ms.byName[name]; ok {
		return m, m.err
	}
	if len(ms.byName) >= MaxModules {
		return nil, fmt.Errorf("more than %d modules", MaxModules)
	}
	rel, src, err := ms.find(name)
	if err != nil && rel == "" {
		return nil, err
	}
	m := &module{name: name, rel: rel, path: filepath.Join(ms.dir, filepath.FromSlash(rel)), err: err}
	if err == nil {
		m.read, m.sum = true, sha256.Sum256(src)
		m.proto, m.err = CompileSource(m.path, src)
	}
	ms.byName[name] = m
	if ms.seen != nil {
		ms.seen()
	}
	return m, m.err
}

// find reads the file of module name: name.lua, else name/init.lua, the
// dots of name being folders. rel is "" when there is no such file (then
// err says where it looked); otherwise err is why the file found cannot be
// read.
func (ms *modules) find(name string) (rel string, src []byte, err error) {
	if err := checkModuleName(name); err != nil {
		return "", nil, err
	}
	base := strings.ReplaceAll(name, ".", "/")
	candidates := []string{base + ".lua", base + "/init.lua"}
	for _, rel := range candidates {
		src, err := safefile.ReadIn(ms.dir, filepath.FromSlash(rel), MaxScriptBytes)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return rel, nil, err
		}
		return rel, src, nil
	}
	return "", nil, fmt.Errorf("%w: no %s or %s in the service's folder %s", errNoModule, candidates[0], candidates[1], ms.dir)
}

// checkModuleName refuses a name that is not dotted words: no "..", "/",
// "\" or absolute path can name a file outside the service's folder.
func checkModuleName(name string) error {
	if name == "" {
		return errors.New("empty module name")
	}
	for part := range strings.SplitSeq(name, ".") {
		ok := part != ""
		for _, r := range part {
			if !(r == '_' || r == '-' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
				ok = false
			}
		}
		if !ok {
			return errors.New(`a module is named by words and dots under the service's folder ("lib.util" is lib/util.lua); "..", "/", "\" and absolute paths are not allowed`)
		}
	}
	return nil
}

// carry loads, into this generation's set, the modules the previous
// generation had loaded (at its top level or later, in a handler), so
// that a module a handler requires lazily is checked before the new
// version serves: one that no longer compiles refuses the version. A
// module whose file is gone is dropped.
func (ms *modules) carry(prev *modules) error {
	if prev == nil {
		return nil
	}
	for _, name := range prev.names() {
		m, err := ms.load(name)
		switch {
		case err == nil, errors.Is(err, errNoModule):
		case m == nil:
			return err
		case errors.As(err, new(*ScriptError)):
			return err
		default:
			return &ScriptError{Script: m.path, Msg: err.Error()}
		}
	}
	return nil
}

// names returns the names of the modules loaded so far.
func (ms *modules) names() []string {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	out := make([]string, 0, len(ms.byName))
	for name := range ms.byName {
		out = append(out, name)
	}
	slices.Sort(out)
	return out
}

// files returns the files of the modules loaded so far, sorted.
func (ms *modules) files() []string {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	out := make([]string, 0, len(ms.byName))
	for _, m := range ms.byName {
		if !slices.Contains(out, m.path) {
			out = append(out, m.path)
		}
	}
	slices.Sort(out)
	return out
}

// version names the script's content together with that of the modules
// loaded so far: the start of a SHA-256 over them. With no module it is
// the script's versionOf.
func (ms *modules) version(src []byte) string {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	if len(ms.byName) == 0 {
		return versionOf(src)
	}
	mods := make([]*module, 0, len(ms.byName))
	for _, m := range ms.byName {
		mods = append(mods, m)
	}
	slices.SortFunc(mods, func(a, b *module) int { return strings.Compare(a.rel, b.rel) })
	h := sha256.New()
	h.Write(ms.script[:])
	for _, m := range mods {
		fmt.Fprintf(h, "\x00%s\x00", m.rel)
		h.Write(m.sum[:])
	}
	return hex.EncodeToString(h.Sum(nil)[:6])
}

// unchanged reports whether src is the script this set was made for and
// every module file it loaded still holds what was loaded (a module that
// could not be read counts as changed when it can be now, and the other
// way round).
func (ms *modules) unchanged(src []byte) bool {
	if sha256.Sum256(src) != ms.script {
		return false
	}
	ms.mu.Lock()
	mods := make([]*module, 0, len(ms.byName))
	for _, m := range ms.byName {
		mods = append(mods, m)
	}
	ms.mu.Unlock()
	for _, m := range mods {
		src, err := safefile.ReadIn(ms.dir, filepath.FromSlash(m.rel), MaxScriptBytes)
		if (err == nil) != m.read || err == nil && sha256.Sum256(src) != m.sum {
			return false
		}
	}
	return true
}

// openRequire installs require in the state: require(name) runs the
// module's top level in this state the first time, with name as its
// argument, and returns what it returned (true for nothing), the same
// value every later time (Lua's package.loaded, kept per state). Its
// top level runs inside the call that requires it, under that call's
// budget. A module that fails raises its error, which names the module's
// file and line; a cyclic require raises an error naming the cycle.
func (st *state) openRequire() {
	loaded := map[string]lua.LValue{}
	loading := map[string]*lua.LState{} // module -> the thread running its top level
	chain := map[*lua.LState][]string{} // a thread's modules being loaded, outermost first
	st.L.SetGlobal("require", st.L.NewFunction(func(L *lua.LState) int {
		name := L.CheckString(1)
		if v, ok := loaded[name]; ok {
			L.Push(v)
			return 1
		}
		if by, ok := loading[name]; ok {
			if by == L {
				c := chain[L]
				i := slices.Index(c, name)
				L.RaiseError("require %q: cyclic require: %s → %s", name, strings.Join(c[i:], " → "), name)
			}
			L.RaiseError("require %q: its top level has not finished (a cyclic require through a coroutine, or another handler waiting in it)", name)
		}
		ms := st.gen.modules
		if ms == nil {
			L.RaiseError("require %q: modules are not available here", name)
		}
		m, err := ms.load(name)
		if err != nil {
			if se, ok := err.(*ScriptError); ok {
				L.Error(lua.LString(se.Error()), 0) // names the module's file and line
			}
			L.RaiseError("require %q: %v", name, err)
		}
		loading[name] = L
		chain[L] = append(chain[L], name)
		defer func() { // also when the top level raises
			delete(loading, name)
			if c := chain[L][:len(chain[L])-1]; len(c) > 0 {
				chain[L] = c
			} else {
				delete(chain, L)
			}
		}()
		L.Push(L.NewFunctionFromProto(m.proto))
		L.Push(lua.LString(name))
		L.Call(1, 1)
		v := L.Get(-1)
		L.Pop(1)
		if v == lua.LNil {
			v = lua.LTrue
		}
		loaded[name] = v
		L.Push(v)
		return 1
	}))
}

// moduleHook is what a service calls when its running version loads a
// module it had not loaded before (see NotifyModules).
type moduleHook struct{ fn atomic.Pointer[func()] }

func (h *moduleHook) call() {
	if fn := h.fn.Load(); fn != nil {
		(*fn)()
	}
}

// NotifyModules has fn called whenever the running version of the script
// loads a module it had not loaded before, at its top level or later in a
// handler (so that a watcher can watch its file from then on). fn is
// called on the state's goroutine, possibly with locks held: it must
// return at once (signal a channel without blocking).
func (s *Service) NotifyModules(fn func()) { s.modHook.fn.Store(&fn) }

// Modules returns the module files the running version has loaded so far
// (required at its top level, in start, or later in a handler), as paths
// under the script's folder: the files whose change reloads the service.
func (s *Service) Modules() []string {
	s.mu.RLock()
	ms := s.gen.modules
	s.mu.RUnlock()
	return ms.files()
}

// ReloadModules is Reload for a watcher that saw a module file of the
// running version saved: the script and its modules are read again and,
// if any changed, a new version replaces the running one (or is refused,
// the running one staying). If it fails, current is asked whether the
// module file still holds what the watcher saw: a failure of content
// already replaced on disk is returned but neither logged nor recorded.
func (s *Service) ReloadModules(current func() bool) (changed bool, err error) {
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	ep := s.Endpoint()
	src, err := readScript(ep.Script)
	if err != nil {
		return false, s.reloadFailed(err)
	}
	return s.update(ep, src, current)
}
