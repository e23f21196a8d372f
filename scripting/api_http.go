package scripting

import (
	"context"
	"net/http"
	"strings"
	"time"

	"github.com/moongate/moongate/gateway/outbound"
	"github.com/moongate/moongate/scripting/luaval"
	lua "github.com/yuin/gopher-lua"
)

// openHTTP installs the `http` module: request, get and post, through the
// generation's outbound client (its endpoint's `http:` policy). Each call
// suspends the handler while it waits (suspend.go); failures raise Lua
// errors.
func (st *state) openHTTP() {
	st.setModule("http", map[string]lua.LGFunction{
		"request": func(L *lua.LState) int {
			return st.httpDo(L, httpRequestArg(L, L.CheckTable(1)))
		},
		"get": func(L *lua.LState) int {
			return st.httpDo(L, outbound.Request{Method: http.MethodGet, URL: L.CheckString(1)})
		},
		"post": func(L *lua.LState) int {
			r := outbound.Request{Method: http.MethodPost, URL: L.CheckString(1), Header: http.Header{}}
			if h := L.OptTable(3, nil); h != nil {
				r.Header = httpHeaderArg(L, h)
			}
			r.Body = httpBodyArg(L, 2, r.Header)
			return st.httpDo(L, r)
		},
	})
}

// httpRequestArg reads http.request's table: method, url, headers, body
// and timeout (seconds).
func httpRequestArg(L *lua.LState, t *lua.LTable) outbound.Request {
	r := outbound.Request{Method: http.MethodGet, Header: http.Header{}}
	url, ok := t.RawGetString("url").(lua.LString)
	if !ok {
		L.ArgError(1, "url must be a string")
	}
	r.URL = string(url)
	switch m := t.RawGetString("method").(type) {
	case lua.LString:
		r.Method = strings.ToUpper(string(m))
	case *lua.LNilType:
	default:
		L.ArgError(1, "method must be a string")
	}
	switch h := t.RawGetString("headers").(type) {
	case *lua.LTable:
		r.Header = httpHeaderArg(L, h)
	case *lua.LNilType:
	default:
		L.ArgError(1, "headers must be a table of name = value")
	}
	L.Push(t.RawGetString("body"))
	r.Body = httpBodyArg(L, L.GetTop(), r.Header)
	L.Pop(1)
	switch s := t.RawGetString("timeout").(type) {
	case lua.LNumber:
		if s <= 0 {
			L.ArgError(1, "timeout must be a positive number of seconds")
		}
		r.Timeout = time.Duration(float64(s) * float64(time.Second))
	case *lua.LNilType:
	default:
		L.ArgError(1, "timeout must be a number of seconds")
	}
	return r
}

// httpHeaderArg reads a table of header name = value (a string, or an
// array of strings for a header given several times).
func httpHeaderArg(L *lua.LState, t *lua.LTable) http.Header {
	h := http.Header{}
	t.ForEach(func(k, v lua.LValue) {
		name, ok := k.(lua.LString)
		if !ok {
			L.ArgError(1, "header names must be strings")
		}
		switch v := v.(type) {
		case lua.LString, lua.LNumber:
			h.Add(string(name), v.String())
		case *lua.LTable:
			for i := 1; i <= v.Len(); i++ {
				h.Add(string(name), v.RawGetInt(i).String())
			}
		default:
			L.ArgError(1, "header "+string(name)+" must be a string")
		}
	})
	return h
}

// httpBodyArg reads the request body at index n: nil, a string, or a table
// sent as JSON (with Content-Type application/json unless h has one).
func httpBodyArg(L *lua.LState, n int, h http.Header) []byte {
	switch v := L.Get(n).(type) {
	case *lua.LNilType:
		return nil
	case lua.LString:
		return []byte(v)
	case *lua.LTable:
		b, err := luaval.EncodeContext(L.Context(), nil, v)
		if err != nil {
			L.ArgError(n, "body: "+err.Error())
		}
		if h.Get("Content-Type") == "" {
			h.Set("Content-Type", "application/json")
		}
		return b
	default:
		L.ArgError(n, "body must be a string or a table (sent as JSON), not "+v.Type().String())
		return nil
	}
}

// httpDo makes the call with the handler suspended, and pushes
// {status, headers, body}; a failed call raises its error.
func (st *state) httpDo(L *lua.LState, r outbound.Request) int {
	var resp *outbound.Response
	var err error
	st.await(func() {
		resp, err = st.gen.http.Do(context.Background(), r)
	})
	if err != nil {
		L.RaiseError("%s", err.Error())
	}
	t := L.CreateTable(0, 3)
	t.RawSetString("status", lua.LNumber(resp.Status))
	t.RawSetString("headers", httpHeaderTable(L, resp.Header))
	t.RawSetString("body", lua.LString(resp.Body))
	L.Push(t)
	return 1
}

// httpHeaderTable returns a response's headers keyed by lower-case name;
// the values of a header given several times are joined with ", ".
func httpHeaderTable(L *lua.LState, h http.Header) *lua.LTable {
	t := L.CreateTable(0, len(h))
	for name, values := range h {
		t.RawSetString(strings.ToLower(name), lua.LString(strings.Join(values, ", ")))
	}
	return t
}
