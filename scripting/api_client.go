package scripting

import (
	"context"
	"net/textproto"
	"strings"

	"github.com/gobwas/ws"
	"github.com/moongate/moongate/gateway/client"
	"github.com/moongate/moongate/gateway/hub"
	"github.com/moongate/moongate/gateway/wsproto"
	"github.com/moongate/moongate/scripting/luaval"
	lua "github.com/yuin/gopher-lua"
)

const clientTypeName = "moongate.client"

// openClient registers the client type: fields id, path, remote, host,
// protocol (the negotiated subprotocol, or ""),
// user (the token's sub) and claims (the token's claims), and
// methods send, close, get, set, attrs, query, header, rooms. It also
// installs the `clients` module (get, count).
func (st *state) openClient() {
	methods := st.L.NewTable()
	st.L.SetFuncs(methods, map[string]lua.LGFunction{
		"send":   clientSend,
		"close":  clientClose,
		"get":    clientGet,
		"set":    st.clientSet,
		"attrs":  clientAttrs,
		"query":  clientQuery,
		"header": clientHeader,
		"rooms":  st.clientRooms,
	})
	mt := st.L.NewTypeMetatable(clientTypeName)
	mt.RawSetString("__index", st.L.NewFunction(func(L *lua.LState) int {
		c, key := checkClient(L, 1), L.CheckString(2)
		if m := methods.RawGetString(key); m != lua.LNil {
			L.Push(m)
			return 1
		}
		if key == "claims" {
			L.Push(claimsValue(L, c))
			return 1
		}
		L.Push(clientField(c, key))
		return 1
	}))
	mt.RawSetString("__eq", st.L.NewFunction(func(L *lua.LState) int {
		L.Push(lua.LBool(checkClient(L, 1) == checkClient(L, 2)))
		return 1
	}))
	mt.RawSetString("__tostring", st.L.NewFunction(func(L *lua.LState) int {
		L.Push(lua.LString("client " + checkClient(L, 1).ID()))
		return 1
	}))
	st.openRemoteClient()
	st.setModule("clients", map[string]lua.LGFunction{
		"get": func(L *lua.LState) int {
			id := L.CheckString(1)
			if c := st.svc.hub.Client(id); c != nil { // on this node: no call
				L.Push(st.clientValue(c))
				return 1
			}
			var m hub.Member
			var ok bool
			st.sharedCall(L, "clients.get", func(ctx context.Context) (err error) {
				m, ok, err = st.svc.rooms.Client(ctx, id)
				return err
			})
			if !ok {
				L.Push(lua.LNil)
				return 1
			}
			L.Push(st.memberValue(m))
			return 1
		},
		"count": func(L *lua.LState) int {
			var n int
			st.sharedCall(L, "clients.count", func(ctx context.Context) (err error) {
				n, err = st.svc.rooms.ClientCount(ctx)
				return err
			})
			L.Push(lua.LNumber(n))
			return 1
		},
	})
}

// clientField returns the read-only field key of c.
func clientField(c *client.Client, key string) lua.LValue {
	req := c.Request()
	switch key {
	case "id":
		return lua.LString(c.ID())
	case "path":
		return lua.LString(req.Path)
	case "remote":
		return lua.LString(req.RemoteAddr)
	case "host":
		return lua.LString(req.Host)
	case "protocol":
		return lua.LString(req.Protocol)
	case "user":
		if sub, ok := req.Claims["sub"].(string); ok {
			return lua.LString(sub)
		}
	}
	return lua.LNil
}

// claimsValue returns c's token claims as a table, or nil for a guest.
func claimsValue(L *lua.LState, c *client.Client) lua.LValue {
	claims := c.Request().Claims
	if claims == nil {
		return lua.LNil
	}
	v, err := luaval.FromGo(L, claims)
	if err != nil {
		L.RaiseError("client.claims: %v", err)
	}
	return v
}

// clientValue returns the Lua value for c; the values of clients pinned to
// this state are made once and kept until the client closes.
func (st *state) clientValue(c *client.Client) lua.LValue {
	if ud := st.clients[c]; ud != nil {
		return ud
	}
	ud := st.L.NewUserData()
	ud.Value = c
	ud.Metatable = st.L.GetTypeMetatable(clientTypeName)
	if p, ok := c.Slot.(pin); ok && int(p)%len(st.gen.states) == st.index {
		st.clients[c] = ud // pinned here: its close event will forget it
	}
	return ud
}

// checkClient returns the client at stack index n or raises an argument
// error; a client on another node of a cluster is refused.
func checkClient(L *lua.LState, n int) *client.Client {
	c, ok := clientOf(L.Get(n))
	if !ok {
		if _, remote := remoteOf(L.Get(n)); remote {
			L.ArgError(n, "a client on this node expected (this one is connected to another node)")
		}
		L.ArgError(n, "client expected")
	}
	return c
}

// checkMember returns the client at stack index n, on this node or
// another, or raises an argument error.
func checkMember(L *lua.LState, n int) hub.Member {
	if c, ok := clientOf(L.Get(n)); ok {
		return hub.LocalMember(c)
	}
	if m, ok := remoteOf(L.Get(n)); ok {
		return m
	}
	L.ArgError(n, "client expected")
	return hub.Member{}
}

// clientOf returns the client a Lua value stands for.
func clientOf(v lua.LValue) (*client.Client, bool) {
	if ud, ok := v.(*lua.LUserData); ok {
		if c, ok := ud.Value.(*client.Client); ok {
			return c, true
		}
	}
	return nil, false
}

// optClient returns the client at stack index n, or nil when it is nil.
func optClient(L *lua.LState, n int) *client.Client {
	if L.Get(n) == lua.LNil {
		return nil
	}
	return checkClient(L, n)
}

// messageKind reads an optional "text" / "binary" argument at stack index
// n; self is 1 for a method (whose self is not counted in errors), else 0.
func messageKind(L *lua.LState, n, self int) ws.OpCode {
	kind := "text"
	if v := L.Get(n); v != lua.LNil {
		kind = argString(L, n, self)
	}
	switch kind {
	case "text":
		return ws.OpText
	case "binary":
		return ws.OpBinary
	default:
		L.ArgError(n-self, `kind must be "text" or "binary"`)
		return 0
	}
}

// Client methods count their arguments the Lua way: self is not one of
// them, so in client:set(key, value) key is argument #1, as in
// store.set(key, value). methodString and its kin read argument n of a
// method, at stack index n+1.

// argString returns the string (or number, as a string) at stack index n,
// or raises an error naming argument n-self.
func argString(L *lua.LState, n, self int) string {
	switch v := L.Get(n).(type) {
	case lua.LString:
		return string(v)
	case lua.LNumber:
		return v.String()
	default:
		L.ArgError(n-self, "string expected, got "+v.Type().String())
		return ""
	}
}

// methodString returns argument n of a method as a string.
func methodString(L *lua.LState, n int) string { return argString(L, n+1, 1) }

// methodOptString returns argument n of a method, or def when it is nil.
func methodOptString(L *lua.LState, n int, def string) string {
	if L.Get(n+1) == lua.LNil {
		return def
	}
	return methodString(L, n)
}

// methodOptInt returns argument n of a method as an int, or def when it
// is nil.
func methodOptInt(L *lua.LState, n, def int) int {
	switch v := L.Get(n + 1).(type) {
	case *lua.LNilType:
		return def
	case lua.LNumber:
		return int(v)
	default:
		L.ArgError(n, "number expected, got "+v.Type().String())
		return 0
	}
}

// pushSendResult pushes true, or false and the reason the frame was not queued.
func pushSendResult(L *lua.LState, err error) int {
	if err != nil {
		L.Push(lua.LFalse)
		L.Push(lua.LString(err.Error()))
		return 2
	}
	L.Push(lua.LTrue)
	return 1
}

// client:send(data [, kind]) -> true | false, reason
func clientSend(L *lua.LState) int {
	c := checkClient(L, 1)
	data := methodString(L, 1)
	return pushSendResult(L, c.Send(wsproto.FrameString(messageKind(L, 3, 1), data)))
}

// client:close([code [, reason]])
func clientClose(L *lua.LState) int {
	c := checkClient(L, 1)
	code := ws.StatusCode(methodOptInt(L, 1, int(ws.StatusNormalClosure)))
	if !wsproto.ValidCloseCode(code) {
		L.ArgError(1, "close code must be 1000-1003, 1007-1014 or 3000-4999")
	}
	c.Close(code, methodOptString(L, 2, ""))
	return 0
}

// client:get(key) -> value
func clientGet(L *lua.LState) int {
	c := checkClient(L, 1)
	v, _ := c.Attr(methodString(L, 1))
	lv, err := luaval.FromGo(L, v)
	if err != nil {
		L.RaiseError("client:get: %v", err)
	}
	L.Push(lv)
	return 1
}

// client:set(key, value); a nil value removes the attribute. In a cluster
// the attribute is also recorded in Redis, for other nodes to read.
func (st *state) clientSet(L *lua.LState) int {
	c := checkClient(L, 1)
	key := methodString(L, 1)
	v, err := luaval.ToGoFor(L, L.Get(3))
	if err != nil {
		L.ArgError(2, err.Error())
	}
	c.SetAttr(key, v)
	if st.svc.cluster != nil {
		st.sharedCall(L, "client:set", func(ctx context.Context) error {
			return st.svc.rooms.SetAttr(ctx, c, key, v)
		})
	}
	return 0
}

// client:attrs() -> table of every attribute
func clientAttrs(L *lua.LState) int {
	c := checkClient(L, 1)
	lv, err := luaval.FromGo(L, c.Attrs())
	if err != nil {
		L.RaiseError("client:attrs: %v", err)
	}
	L.Push(lv)
	return 1
}

// client:query(name) -> the first value of a query parameter, or nil
func clientQuery(L *lua.LState) int {
	c := checkClient(L, 1)
	pushOptString(L, c.Request().Query, methodString(L, 1))
	return 1
}

// client:header(name) -> the first value of a request header, or nil
func clientHeader(L *lua.LState) int {
	c := checkClient(L, 1)
	pushOptString(L, c.Request().Header, textproto.CanonicalMIMEHeaderKey(methodString(L, 1)))
	return 1
}

func pushOptString(L *lua.LState, values map[string][]string, key string) {
	if v, ok := values[key]; ok && len(v) > 0 {
		L.Push(lua.LString(v[0]))
		return
	}
	L.Push(lua.LNil)
}

// client:rooms() -> the names of the rooms the client is in (asked of
// this node's hub: a client's rooms are its node's to know)
func (st *state) clientRooms(L *lua.LState) int {
	c := checkClient(L, 1)
	L.Push(stringList(L, st.svc.hub.RoomsOf(c)))
	return 1
}

// stringList returns a Lua array (marked as a JSON array) of strings.
func stringList(L *lua.LState, items []string) *lua.LTable {
	t := L.CreateTable(len(items), 0)
	for _, s := range items {
		t.Append(lua.LString(s))
	}
	return luaval.Array(L, t)
}

// requestTable describes c's upgrade request to the connect handler:
// path, query (name -> first value), headers (lower-case name -> first
// value), remote and host.
func (st *state) requestTable(c *client.Client) *lua.LTable {
	req := c.Request()
	t := st.L.NewTable()
	t.RawSetString("path", lua.LString(req.Path))
	t.RawSetString("remote", lua.LString(req.RemoteAddr))
	t.RawSetString("host", lua.LString(req.Host))
	q := st.L.NewTable()
	for k, v := range req.Query {
		q.RawSetString(k, lua.LString(v[0]))
	}
	t.RawSetString("query", q)
	h := st.L.NewTable()
	for k, v := range req.Header {
		h.RawSetString(strings.ToLower(k), lua.LString(v[0]))
	}
	t.RawSetString("headers", h)
	return t
}
