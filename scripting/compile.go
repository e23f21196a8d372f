package scripting

import (
	"bytes"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/moongate/moongate/scripting/luaval"
	lua "github.com/yuin/gopher-lua"
	"github.com/yuin/gopher-lua/parse"
)

// ScriptError is a problem in a script, located as `script:line: message`.
type ScriptError struct {
	Script    string
	Line      int // 0 when unknown
	Msg       string
	Traceback string // the Lua stack when a handler failed, innermost call first; "" when unknown
}

func (e *ScriptError) Error() string {
	if e.Line == 0 {
		return e.Script + ": " + e.Msg
	}
	return e.Script + ":" + strconv.Itoa(e.Line) + ": " + e.Msg
}

// Compile reads and compiles the script at path. The compiled form is
// shared by every Lua state that runs the script; error messages and stack
// traces name the script by path.
func Compile(path string) (*lua.FunctionProto, error) {
	src, err := readScript(path)
	if err != nil {
		return nil, err
	}
	return CompileSource(path, src)
}

// CompileSource compiles src as the script named name.
func CompileSource(name string, src []byte) (*lua.FunctionProto, error) {
	chunk, err := parse.Parse(bytes.NewReader(src), name)
	if err != nil {
		return nil, syntaxError(name, src, err)
	}
	proto, err := lua.Compile(chunk, name)
	if err != nil {
		var ce *lua.CompileError
		if errors.As(err, &ce) {
			return nil, &ScriptError{Script: name, Line: ce.Line, Msg: ce.Message}
		}
		return nil, &ScriptError{Script: name, Msg: err.Error()}
	}
	return proto, nil
}

// syntaxError turns the parser's error into a ScriptError.
func syntaxError(name string, src []byte, err error) error {
	var pe *parse.Error
	if !errors.As(err, &pe) {
		return &ScriptError{Script: name, Msg: strings.TrimSpace(err.Error())}
	}
	msg := strings.TrimSpace(pe.Message)
	if pe.Pos.Line == parse.EOF {
		return &ScriptError{Script: name, Line: bytes.Count(src, []byte("\n")) + 1, Msg: msg + " at the end of the file"}
	}
	if pe.Token != "" {
		msg = fmt.Sprintf("%s near '%s'", msg, pe.Token)
	}
	return &ScriptError{Script: name, Line: pe.Pos.Line, Msg: msg}
}

// luaPosition matches the "script:line: message" that Lua puts in front of a
// runtime error raised in a script.
var luaPosition = regexp.MustCompile(`^(.+?):(\d+): (?s)(.*)$`)

// runtimeError turns an error from a protected Lua call into a ScriptError
// for script, keeping the position Lua reported.
func runtimeError(script string, err error) *ScriptError {
	msg := err.Error()
	var trace string
	var ae *lua.ApiError
	if errors.As(err, &ae) && ae.Object != nil {
		msg, trace = errorValue(ae.Object), ae.StackTrace
	}
	if m := luaPosition.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[2])
		return &ScriptError{Script: m[1], Line: line, Msg: m[3], Traceback: trace}
	}
	return &ScriptError{Script: script, Msg: msg, Traceback: trace}
}

// errorValue shows what a script raised: a string as it is, a table (as
// in error({code = 1})) by its content in JSON, cut at 1 KiB.
func errorValue(v lua.LValue) string {
	t, ok := v.(*lua.LTable)
	if !ok {
		return v.String()
	}
	b, err := luaval.Encode(nil, t)
	if err != nil {
		return v.String()
	}
	if len(b) > 1024 {
		b = append(b[:1024], "..."...)
	}
	return "error object " + string(b)
}
