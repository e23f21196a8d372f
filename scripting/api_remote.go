package scripting

import (
	"context"

	"github.com/gobwas/ws"
	"github.com/moongate/moongate/gateway/hub"
	"github.com/moongate/moongate/gateway/wsproto"
	"github.com/moongate/moongate/scripting/luaval"
	lua "github.com/yuin/gopher-lua"
)

// remoteClientTypeName is the metatable of a client connected to another
// node of a cluster, as rooms.members and clients.get return it.
const remoteClientTypeName = "moongate.remote_client"

// openRemoteClient installs the type of clients on other nodes. Such a
// client has the fields id, user and node, and the methods send, close,
// get, attrs and rooms, each a call through Redis (the handler suspended
// while it waits) but get and attrs of a client found by rooms.members or
// clients.get, which read its attributes as they were then; set, query
// and header are its own node's to answer.
func (st *state) openRemoteClient() {
	methods := st.L.NewTable()
	st.L.SetFuncs(methods, map[string]lua.LGFunction{
		"send": func(L *lua.LState) int {
			m, data := checkRemote(L), methodString(L, 1)
			op := messageKind(L, 3, 1)
			var err error
			st.await(func() {
				ctx, cancel := st.callContext()
				defer cancel()
				err = st.svc.rooms.Send(ctx, m, op, data)
			})
			return pushSendResult(L, err)
		},
		"close": func(L *lua.LState) int {
			m := checkRemote(L)
			code := ws.StatusCode(methodOptInt(L, 1, int(ws.StatusNormalClosure)))
			if !wsproto.ValidCloseCode(code) {
				L.ArgError(1, "close code must be 1000-1003, 1007-1014 or 3000-4999")
			}
			reason := methodOptString(L, 2, "")
			st.sharedCall(L, "client:close", func(ctx context.Context) error {
				return st.svc.rooms.Close(ctx, m, code, reason)
			})
			return 0
		},
		"get": func(L *lua.LState) int {
			m, key := checkRemote(L), methodString(L, 1)
			var v any
			if m.Attrs != nil { // as they were when it was looked up: no call
				v = m.Attrs[key]
			} else {
				st.sharedCall(L, "client:get", func(ctx context.Context) (err error) {
					v, _, err = st.svc.rooms.Attr(ctx, m, key)
					return err
				})
			}
			lv, err := luaval.FromGo(L, v)
			if err != nil {
				L.RaiseError("client:get: %v", err)
			}
			L.Push(lv)
			return 1
		},
		"attrs": func(L *lua.LState) int {
			m := checkRemote(L)
			var attrs map[string]any
			st.sharedCall(L, "client:attrs", func(ctx context.Context) (err error) {
				attrs, err = st.svc.rooms.Attrs(ctx, m)
				return err
			})
			lv, err := luaval.FromGo(L, attrs)
			if err != nil {
				L.RaiseError("client:attrs: %v", err)
			}
			L.Push(lv)
			return 1
		},
		"rooms": func(L *lua.LState) int {
			m := checkRemote(L)
			var rooms []string
			st.sharedCall(L, "client:rooms", func(ctx context.Context) (err error) {
				rooms, err = st.svc.rooms.RoomsOf(ctx, m)
				return err
			})
			L.Push(stringList(L, rooms))
			return 1
		},
		"set": func(L *lua.LState) int {
			L.RaiseError("client:set: the client is connected to another node: only its node sets its attributes")
			return 0
		},
		"query":  func(L *lua.LState) int { L.Push(lua.LNil); return 1 },
		"header": func(L *lua.LState) int { L.Push(lua.LNil); return 1 },
	})
	mt := st.L.NewTypeMetatable(remoteClientTypeName)
	mt.RawSetString("__index", st.L.NewFunction(func(L *lua.LState) int {
		m, key := checkRemote(L), L.CheckString(2)
		if fn := methods.RawGetString(key); fn != lua.LNil {
			L.Push(fn)
			return 1
		}
		switch key {
		case "id":
			L.Push(lua.LString(m.ID))
		case "node":
			L.Push(lua.LString(m.Node))
		case "user":
			if m.User != "" {
				L.Push(lua.LString(m.User))
				return 1
			}
			L.Push(lua.LNil)
		default:
			L.Push(lua.LNil)
		}
		return 1
	}))
	mt.RawSetString("__eq", st.L.NewFunction(func(L *lua.LState) int {
		a, _ := remoteOf(L.Get(1))
		b, _ := remoteOf(L.Get(2))
		L.Push(lua.LBool(a.ID == b.ID))
		return 1
	}))
	mt.RawSetString("__tostring", st.L.NewFunction(func(L *lua.LState) int {
		m := checkRemote(L)
		L.Push(lua.LString("client " + m.ID + " on node " + m.Node))
		return 1
	}))
}

// callContext bounds one call to the cluster. It does not end with the
// service: the handlers a shutdown still runs (close handlers) reach the
// cluster too.
func (st *state) callContext() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), callTimeout)
}

// memberValue returns the Lua value of m: the client's own value when it
// is on this node, else a remote client.
func (st *state) memberValue(m hub.Member) lua.LValue {
	if m.Local != nil {
		return st.clientValue(m.Local)
	}
	ud := st.L.NewUserData()
	ud.Value = m
	ud.Metatable = st.L.GetTypeMetatable(remoteClientTypeName)
	return ud
}

// remoteOf returns the remote client a Lua value stands for.
func remoteOf(v lua.LValue) (hub.Member, bool) {
	if ud, ok := v.(*lua.LUserData); ok {
		if m, ok := ud.Value.(hub.Member); ok {
			return m, true
		}
	}
	return hub.Member{}, false
}

// checkRemote returns the remote client that is a method's self.
func checkRemote(L *lua.LState) hub.Member {
	m, ok := remoteOf(L.Get(1))
	if !ok {
		L.ArgError(1, "remote client expected")
	}
	return m
}
