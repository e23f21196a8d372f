package scripting

import (
	"github.com/moongate/moongate/gateway/wsproto"
	"github.com/moongate/moongate/scripting/luaval"
	lua "github.com/yuin/gopher-lua"
)

// maxRoomName bounds a room name's length.
const maxRoomName = 256

// openRooms installs the `rooms` module. Rooms belong to the service and
// span all its states: join, leave, has, members, count, list, broadcast.
func (st *state) openRooms() {
	h := st.svc.hub
	st.setModule("rooms", map[string]lua.LGFunction{
		"join": func(L *lua.LState) int {
			L.Push(lua.LBool(h.Join(checkRoom(L, 1), checkClient(L, 2))))
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
			frame := wsproto.FrameString(messageKind(L, 4), data)
			L.Push(lua.LNumber(h.Broadcast(room, frame, except)))
			return 1
		},
	})
}

// checkRoom returns the room name at stack index n.
func checkRoom(L *lua.LState, n int) string {
	name := L.CheckString(n)
	if name == "" || len(name) > maxRoomName {
		L.ArgError(n, "room name must be 1 to 256 bytes")
	}
	return name
}
