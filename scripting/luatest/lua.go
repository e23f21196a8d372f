package luatest

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/gobwas/ws"
	"github.com/moongate/moongate/gateway"
	"github.com/moongate/moongate/scripting/luaval"
	lua "github.com/yuin/gopher-lua"
)

// The Lua side of a test: the harness `t` a test function receives and
// the clients t:connect returns. See docs/testing.md.

const (
	harnessType = "luatest.t"
	clientType  = "luatest.client"
)

// failure is what a failed expectation raises: the test stops, and the
// runner prints msg (which starts with the test file's file:line).
type failure struct{ msg string }

// test is one running test: its Lua state, harness and what it reports.
type test struct {
	name    string
	L       *lua.LState
	h       *Harness
	logs    *logSink
	outages *outages // the service's databases, nil when it has none
}

// raise fails the test at the test file's line that called the API
// function running now; when that line is in a helper function, the lines
// that called the helper follow, as in a traceback.
func (tt *test) raise(L *lua.LState, format string, args ...any) {
	ud := L.NewUserData()
	msg := fmt.Sprintf(format, args...)
	frames := callers(L)
	if len(frames) > 0 {
		msg = frames[0] + ": " + msg
	}
	if len(frames) > 1 {
		msg += " (called from " + strings.Join(frames[1:], ", ") + ")"
	}
	ud.Value = &failure{msg: msg}
	L.Error(ud, 0)
}

// callers returns the "file:line" of each Lua function on the stack,
// innermost first, up to the test function.
func callers(L *lua.LState) []string {
	var out []string
	for level := 1; level < 50; level++ {
		if _, ok := L.GetStack(level); !ok {
			break
		}
		if w := strings.TrimSuffix(L.Where(level), ":"); w != "" {
			out = append(out, w)
		}
	}
	return out
}

// where returns "file:line: " of the innermost Lua function that called
// into Go.
func where(L *lua.LState) string {
	if frames := callers(L); len(frames) > 0 {
		return frames[0] + ": "
	}
	return ""
}

// install gives L the test API: the metatables of t and of clients.
func (tt *test) install(L *lua.LState) {
	mt := L.NewTypeMetatable(harnessType)
	L.SetField(mt, "__index", L.SetFuncs(L.NewTable(), map[string]lua.LGFunction{
		"connect": tt.connect,
		"refused": tt.refused,
		"advance": tt.advance,
		"settle": func(L *lua.LState) int {
			tt.settle(L)
			return 0
		},
		"now": func(L *lua.LState) int {
			L.Push(lua.LNumber(float64(tt.h.clock.Now().UnixMicro()) / 1e6))
			return 1
		},
		"log": func(L *lua.LState) int {
			tt.logs.add(where(L) + joinArgs(L, 2))
			return 0
		},
		"fail": func(L *lua.LState) int {
			tt.raise(L, "%s", joinArgs(L, 2))
			return 0
		},
		"database_down": func(L *lua.LState) int { return tt.setDown(L, true) },
		"database_up":   func(L *lua.LState) int { return tt.setDown(L, false) },
		"script_errors": func(L *lua.LState) int {
			out := L.NewTable()
			for _, e := range tt.logs.takeErrors() {
				out.Append(lua.LString(e))
			}
			L.Push(out)
			return 1
		},
	}))
	cmt := L.NewTypeMetatable(clientType)
	L.SetField(cmt, "__index", L.SetFuncs(L.NewTable(), map[string]lua.LGFunction{
		"send":           func(L *lua.LState) int { return tt.send(L, false) },
		"send_binary":    func(L *lua.LState) int { return tt.send(L, true) },
		"expect":         tt.expect,
		"expect_nothing": tt.expectNothing,
		"receive":        tt.receive,
		"close":          tt.closeClient,
		"drop": func(L *lua.LState) int {
			tt.conn(L).Drop()
			tt.settle(L)
			return 0
		},
		"expect_close": tt.expectClose,
		"id": func(L *lua.LState) int {
			L.Push(lua.LString(tt.conn(L).ID()))
			return 1
		},
	}))
}

// value returns the userdata t for the test.
func (tt *test) value(L *lua.LState) lua.LValue {
	ud := L.NewUserData()
	ud.Value = tt
	L.SetMetatable(ud, L.GetTypeMetatable(harnessType))
	return ud
}

// joinArgs joins the arguments from index first on with spaces, as print does.
func joinArgs(L *lua.LState, first int) string {
	var parts []string
	for i := first; i <= L.GetTop(); i++ {
		parts = append(parts, L.ToStringMeta(L.Get(i)).String())
	}
	return strings.Join(parts, " ")
}

// settle waits for the service to be quiescent, failing the test when it
// does not become so.
func (tt *test) settle(L *lua.LState) {
	if err := tt.h.Settle(); err != nil {
		tt.raise(L, "%v", err)
	}
}

// conn returns the client a method was called on.
func (tt *test) conn(L *lua.LState) *Conn {
	ud := L.CheckUserData(1)
	c, ok := ud.Value.(*Conn)
	if !ok {
		L.ArgError(1, "a client expected (call its methods with a colon: a:send(...))")
	}
	return c
}

// connectOptions reads t:connect's table: path, query, headers, claims,
// remote, protocol.
func (tt *test) connectOptions(L *lua.LState) ConnectOptions {
	var o ConnectOptions
	tbl := L.OptTable(2, L.NewTable())
	o.Path = lua.LVAsString(tbl.RawGetString("path"))
	o.Remote = lua.LVAsString(tbl.RawGetString("remote"))
	o.Protocol = lua.LVAsString(tbl.RawGetString("protocol"))
	if q, ok := tbl.RawGetString("query").(*lua.LTable); ok {
		o.Query = url.Values{}
		q.ForEach(func(k, v lua.LValue) { o.Query.Set(k.String(), L.ToStringMeta(v).String()) })
	}
	if hd, ok := tbl.RawGetString("headers").(*lua.LTable); ok {
		o.Header = http.Header{}
		hd.ForEach(func(k, v lua.LValue) { o.Header.Set(k.String(), L.ToStringMeta(v).String()) })
	}
	if cl, ok := tbl.RawGetString("claims").(*lua.LTable); ok {
		if tt.h.ep.Auth == nil {
			tt.raise(L, "claims given, but endpoint %s has no auth section: the gateway would not read a token", tt.h.ep.Path)
		}
		g, err := luaval.ToGo(cl)
		if err == nil {
			// As the gateway's verifier gives them: decoded from JSON.
			var raw []byte
			if raw, err = json.Marshal(g); err == nil {
				err = json.Unmarshal(raw, &o.Claims)
			}
		}
		if err != nil {
			tt.raise(L, "claims: %v", err)
		}
	}
	return o
}

// connect implements t:connect{...}: a connected client, or a failure
// when the connection is refused.
func (tt *test) connect(L *lua.LState) int {
	c, err := tt.h.Connect(tt.connectOptions(L))
	if err != nil {
		var r *gateway.Refusal
		if errors.As(err, &r) {
			tt.raise(L, "connect refused: %d %s", r.Status, r.Reason)
		}
		tt.raise(L, "connect: %v", err)
	}
	tt.settle(L)
	ud := L.NewUserData()
	ud.Value = c
	L.SetMetatable(ud, L.GetTypeMetatable(clientType))
	L.Push(ud)
	return 1
}

// refused implements t:refused{...}: the status and reason of a refused
// connection, or a failure when it is accepted.
func (tt *test) refused(L *lua.LState) int {
	c, err := tt.h.Connect(tt.connectOptions(L))
	if err == nil {
		c.Drop()
		tt.raise(L, "expected the connection to be refused, but it was accepted")
	}
	var r *gateway.Refusal
	if !errors.As(err, &r) {
		tt.raise(L, "connect: %v", err)
	}
	L.Push(lua.LNumber(r.Status))
	L.Push(lua.LString(r.Reason))
	return 2
}

// advance implements t:advance(seconds).
func (tt *test) advance(L *lua.LState) int {
	seconds := float64(L.CheckNumber(2))
	if seconds < 0 {
		L.ArgError(1, "the clock only moves forward")
	}
	if err := tt.h.Advance(time.Duration(seconds * float64(time.Second))); err != nil {
		tt.raise(L, "%v", err)
	}
	return 0
}

// send implements a:send(text) and a:send_binary(data).
func (tt *test) send(L *lua.LState, binary bool) int {
	c := tt.conn(L)
	if err := c.Send(L.CheckString(2), binary); err != nil {
		tt.raise(L, "%v", err)
	}
	tt.settle(L)
	return 0
}

// closeClient implements a:close([code [, reason]]).
func (tt *test) closeClient(L *lua.LState) int {
	c := tt.conn(L)
	code := ws.StatusCode(L.OptInt(2, int(ws.StatusNormalClosure)))
	if err := c.Close(code, L.OptString(3, "")); err != nil {
		tt.raise(L, "%v", err)
	}
	tt.settle(L)
	return 0
}

// next settles and takes c's next message, failing the test with what
// the client saw instead when there is none.
func (tt *test) next(L *lua.LState, c *Conn, expected string) Message {
	tt.settle(L)
	if v := c.Violation(); v != "" {
		tt.raise(L, "expected %s, but the service broke the protocol: %s", expected, v)
	}
	m, ok := c.Next()
	if !ok {
		if closed, code, reason := c.CloseStatus(); closed {
			tt.raise(L, "expected %s, got the connection closed (%d %q)", expected, code, reason)
		}
		if c.Ended() {
			tt.raise(L, "expected %s, got the connection ended", expected)
		}
		tt.raise(L, "expected %s, got nothing", expected)
	}
	return m
}

// describe shows a received message in a failure.
func describe(m Message) string {
	if m.Binary {
		return fmt.Sprintf("binary %q", m.Data)
	}
	return m.Data
}

// expect implements a:expect(x): x a string (the text equals it),
// {match = pattern} (the text matches the Lua pattern), {binary = data}
// (a binary message equal to data), or any other table, which the message,
// decoded as JSON, must contain (see subset). It returns the message:
// decoded for a table, as the text otherwise.
func (tt *test) expect(L *lua.LState) int {
	c := tt.conn(L)
	want := L.CheckAny(2)
	switch w := want.(type) {
	case lua.LString:
		m := tt.next(L, c, fmt.Sprintf("%q", string(w)))
		if m.Binary || m.Data != string(w) {
			tt.raise(L, "expected %q, got %s", string(w), describe(m))
		}
		L.Push(lua.LString(m.Data))
		return 1
	case *lua.LTable:
		if pat, ok := soleKey(w, "match"); ok {
			m := tt.next(L, c, fmt.Sprintf("a message matching %q", pat))
			if m.Binary || !tt.matches(L, m.Data, pat) {
				tt.raise(L, "expected a message matching %q, got %s", pat, describe(m))
			}
			L.Push(lua.LString(m.Data))
			return 1
		}
		if data, ok := soleKey(w, "binary"); ok {
			m := tt.next(L, c, fmt.Sprintf("binary %q", data))
			if !m.Binary || m.Data != data {
				tt.raise(L, "expected binary %q, got %s", data, describe(m))
			}
			L.Push(lua.LString(m.Data))
			return 1
		}
		shown, err := luaval.Encode(nil, w)
		if err != nil {
			L.ArgError(2, fmt.Sprintf("the expected table cannot be shown as JSON: %v", err))
		}
		m := tt.next(L, c, string(shown))
		if m.Binary {
			tt.raise(L, "expected %s, got %s", shown, describe(m))
		}
		got, err := luaval.Decode(L, []byte(m.Data))
		if err != nil {
			tt.raise(L, "expected %s, got %s (not JSON: %v)", shown, m.Data, err)
		}
		if diffs := subset(w, got, "", nil); len(diffs) > 0 {
			tt.raise(L, "expected %s, got %s (%s)", shown, m.Data, strings.Join(diffs, "; "))
		}
		L.Push(got)
		return 1
	}
	L.ArgError(2, "expect takes a string or a table")
	return 0
}

// soleKey returns t[key] when it is a string and t has no other key.
func soleKey(t *lua.LTable, key string) (string, bool) {
	s, ok := t.RawGetString(key).(lua.LString)
	if !ok {
		return "", false
	}
	k, _ := t.Next(lua.LNil)
	if k2, _ := t.Next(k); k2 != lua.LNil {
		return "", false
	}
	return string(s), true
}

// matches reports whether s matches the Lua pattern pat (string.find).
func (tt *test) matches(L *lua.LState, s, pat string) bool {
	find := L.GetField(L.GetGlobal("string"), "find")
	if err := L.CallByParam(lua.P{Fn: find, NRet: 1, Protect: true}, lua.LString(s), lua.LString(pat)); err != nil {
		tt.raise(L, "bad pattern %q: %v", pat, err)
	}
	found := L.Get(-1) != lua.LNil
	L.Pop(1)
	return found
}

// maxDiffs bounds the differences a failed table expectation lists.
const maxDiffs = 4

// subset lists where got differs from want (nothing when it matches), as
// "path: why": a table of want with keys 1..n (or marked json.array) is an
// array, and got must be an array of the same length whose elements match;
// any other table is an object, each of whose keys got must have with a
// matching value (got may have more keys); other values must be equal.
func subset(want, got lua.LValue, path string, out []string) []string {
	if len(out) >= maxDiffs {
		return out
	}
	wt, ok := want.(*lua.LTable)
	if !ok {
		if want == got || (luaval.IsNull(want) && luaval.IsNull(got)) {
			return out
		}
		return append(out, fmt.Sprintf("%s: want %s, got %s", orRoot(path), show(want), show(got)))
	}
	gt, ok := got.(*lua.LTable)
	if !ok {
		return append(out, fmt.Sprintf("%s: want a table, got %s", orRoot(path), show(got)))
	}
	if n, isArray := arrayLen(wt); isArray {
		if gn, gotArray := arrayLen(gt); !gotArray || gn != n {
			return append(out, fmt.Sprintf("%s: want an array of %d, got %s", orRoot(path), n, show(got)))
		}
		for i := 1; i <= n; i++ {
			out = subset(wt.RawGetInt(i), gt.RawGetInt(i), fmt.Sprintf("%s[%d]", path, i), out)
		}
		return out
	}
	type pair struct{ k, v lua.LValue }
	var pairs []pair
	wt.ForEach(func(k, v lua.LValue) { pairs = append(pairs, pair{k, v}) })
	sort.Slice(pairs, func(i, j int) bool { return pairs[i].k.String() < pairs[j].k.String() })
	for _, p := range pairs {
		gv := gt.RawGet(p.k)
		at := path + "." + p.k.String()
		if gv == lua.LNil {
			out = append(out, at+": missing")
			continue
		}
		out = subset(p.v, gv, at, out)
	}
	if len(out) > maxDiffs {
		out = out[:maxDiffs]
	}
	return out
}

func orRoot(path string) string {
	if path == "" {
		return "the message"
	}
	return path
}

// arrayLen reports whether t is an array (keys 1..n and nothing else,
// n > 0, or marked as an array by json.array or json.decode) and its length.
func arrayLen(t *lua.LTable) (int, bool) {
	n := t.Len()
	count := 0
	t.ForEach(func(_, _ lua.LValue) { count++ })
	if count == n && n > 0 {
		return n, true
	}
	if mt, ok := t.Metatable.(*lua.LTable); ok && count == n && mt.RawGetString("__jsontype") == lua.LString("array") {
		return n, true
	}
	return n, false
}

// show renders a Lua value in a failure.
func show(v lua.LValue) string {
	if luaval.IsNull(v) {
		return "null"
	}
	if s, ok := v.(lua.LString); ok {
		return fmt.Sprintf("%q", string(s))
	}
	if out, err := luaval.Encode(nil, v); err == nil {
		return string(out)
	}
	return v.String()
}

// receive implements a:receive(): the next message and its kind ("text"
// or "binary"), or nil when none has come.
func (tt *test) receive(L *lua.LState) int {
	c := tt.conn(L)
	tt.settle(L)
	m, ok := c.Next()
	if !ok {
		L.Push(lua.LNil)
		return 1
	}
	L.Push(lua.LString(m.Data))
	if m.Binary {
		L.Push(lua.LString("binary"))
	} else {
		L.Push(lua.LString("text"))
	}
	return 2
}

// expectNothing implements a:expect_nothing([seconds]): after the
// virtual clock has moved seconds forward (0 by default), no message is
// waiting.
func (tt *test) expectNothing(L *lua.LState) int {
	c := tt.conn(L)
	if seconds := float64(L.OptNumber(2, 0)); seconds > 0 {
		if err := tt.h.Advance(time.Duration(seconds * float64(time.Second))); err != nil {
			tt.raise(L, "%v", err)
		}
	}
	tt.settle(L)
	if m, ok := c.Next(); ok {
		tt.raise(L, "expected nothing, got %s", describe(m))
	}
	return 0
}

// expectClose implements a:expect_close([code [, reason]]): the service
// closed the connection (with that code and reason, when given); it
// returns the code and reason.
func (tt *test) expectClose(L *lua.LState) int {
	c := tt.conn(L)
	wantCode := L.OptInt(2, 0)
	reason, checkReason := L.Get(3).(lua.LString)
	tt.settle(L)
	if m, ok := c.Next(); ok {
		tt.raise(L, "expected the connection closed, got %s", describe(m))
	}
	closed, code, got := c.CloseStatus()
	if !closed && c.Ended() {
		tt.raise(L, "expected a close frame, but the connection ended without one")
	}
	if !closed {
		tt.raise(L, "expected the connection closed, but it is open")
	}
	if wantCode != 0 && int(code) != wantCode {
		tt.raise(L, "expected close code %d, got %d %q", wantCode, code, got)
	}
	if checkReason && got != string(reason) {
		tt.raise(L, "expected close reason %q, got %q", string(reason), got)
	}
	L.Push(lua.LNumber(code))
	L.Push(lua.LString(got))
	return 2
}

// setDown implements t:database_down(name) and t:database_up(name).
func (tt *test) setDown(L *lua.LState, down bool) int {
	name := L.CheckString(2)
	if tt.outages == nil || !tt.outages.setDown(name, down) {
		tt.raise(L, "the service has no database %q (list it under the endpoint's databases:)", name)
	}
	return 0
}
