package scripting

import (
	"github.com/gobwas/ws"
	"github.com/moongate/moongate/gateway/client"
	"github.com/moongate/moongate/gateway/hub"
	"github.com/moongate/moongate/gateway/wsproto"
	"github.com/moongate/moongate/scripting/luaval"
	lua "github.com/yuin/gopher-lua"
)

// maxRoomName bounds a room name's length.
const maxRoomName = 256

// openRooms installs the `rooms` module. Rooms belong to the service and
// span all its states: join, leave, has, members, count, list, broadcast,
// and publish and history for rooms that keep recent messages.
func (st *state) openRooms() {
	h := st.svc.hub
	st.setModule("rooms", map[string]lua.LGFunction{
		"join": func(L *lua.LState) int {
			room, c := checkRoom(L, 1), checkClient(L, 2)
			if L.GetTop() < 3 {
				L.Push(lua.LBool(h.Join(room, c)))
				return 1
			}
			joined, hist := h.JoinWithHistory(room, c, historyCount(L, 3))
			L.Push(lua.LBool(joined))
			L.Push(stringList(L, hist))
			return 2
		},
		"history": func(L *lua.LState) int {
			L.Push(stringList(L, h.History(checkRoom(L, 1), historyCount(L, 2))))
			return 1
		},
		"publish": func(L *lua.LState) int {
			room, data := checkRoom(L, 1), L.CheckString(2)
			opts := L.OptTable(3, L.NewTable())
			var except *client.Client
			if v := opts.RawGetString("except"); v != lua.LNil {
				L.Push(v)
				except = checkClient(L, L.GetTop())
				L.Pop(1)
			}
			keep, _ := opts.RawGetString("history").(lua.LNumber)
			op := ws.OpText
			if opts.RawGetString("kind") == lua.LString("binary") {
				op = ws.OpBinary
			}
			frame := wsproto.FrameString(op, data)
			L.Push(lua.LNumber(h.Publish(room, frame, data, except, int(keep))))
			return 1
		},
		"leave": func(L *lua.LState) int {
			L.Push(lua.LBool(h.Leave(checkRoom(L, 1), checkClient(L, 2))))
			return 1
		},
		"has": func(L *lua.LState) int {
			L.Push(lua.LBool(h.IsMember(checkRoom(L, 1), checkClient(L, 2))))
			return 1
		},
		"count": func(L *lua.LState) int {
			L.Push(lua.LNumber(h.Count(checkRoom(L, 1))))
			return 1
		},
		"members": func(L *lua.LState) int {
			members := h.Members(checkRoom(L, 1))
			t := L.CreateTable(len(members), 0)
			for _, c := range members {
				t.Append(st.clientValue(c))
			}
			L.Push(luaval.Array(L, t))
			return 1
		},
		"list": func(L *lua.LState) int {
			rooms := h.Rooms()
			t := L.CreateTable(len(rooms), 0)
			for _, r := range rooms {
				row := L.CreateTable(0, 2)
				row.RawSetString("name", lua.LString(r.Name))
				row.RawSetString("members", lua.LNumber(r.Members))
				t.Append(row)
			}
			L.Push(luaval.Array(L, t))
			return 1
		},
		"broadcast": func(L *lua.LState) int {
			room, data := checkRoom(L, 1), L.CheckString(2)
			except := optClient(L, 3)
			frame := wsproto.FrameString(messageKind(L, 4, 0), data)
			L.Push(lua.LNumber(h.Broadcast(room, frame, except)))
			return 1
		},
	})
}

// historyCount reads an optional number of history entries (default all).
func historyCount(L *lua.LState, n int) int {
	count := L.OptInt(n, hub.MaxHistory)
	if count < 0 {
		L.ArgError(n, "history count must not be negative")
	}
	return count
}

// checkRoom returns the room name at stack index n.
func checkRoom(L *lua.LState, n int) string {
	name := L.CheckString(n)
	if name == "" || len(name) > maxRoomName {
		L.ArgError(n, "room name must be 1 to 256 bytes")
	}
	return name
}
