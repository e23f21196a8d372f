package scripting

import (
	"context"

	"github.com/gobwas/ws"
	"github.com/moongate/moongate/gateway/cluster"
	"github.com/moongate/moongate/gateway/hub"
	"github.com/moongate/moongate/gateway/wsproto"
	"github.com/moongate/moongate/scripting/luaval"
	lua "github.com/yuin/gopher-lua"
)

// maxRoomName bounds a room name's length.
const maxRoomName = 256

// openRooms installs the `rooms` module. Rooms belong to the service and
// span all its states (and, in a cluster, all its nodes): join, leave,
// has, members, count, list, broadcast, and publish and history for rooms
// that keep recent messages.
func (st *state) openRooms() {
	rs := st.svc.rooms
	st.setModule("rooms", map[string]lua.LGFunction{
		"join": func(L *lua.LState) int {
			room, c := checkRoom(L, 1), checkClient(L, 2)
			n := -1
			if L.GetTop() >= 3 {
				n = historyCount(L, 3)
			}
			var joined bool
			var hist []string
			st.sharedCall(L, "rooms.join", func(ctx context.Context) (err error) {
				joined, hist, err = rs.Join(ctx, room, c, n)
				return err
			})
			L.Push(lua.LBool(joined))
			if n < 0 {
				return 1
			}
			L.Push(stringList(L, hist))
			return 2
		},
		"history": func(L *lua.LState) int {
			room, n := checkRoom(L, 1), historyCount(L, 2)
			var hist []string
			st.sharedCall(L, "rooms.history", func(ctx context.Context) (err error) {
				hist, err = rs.History(ctx, room, n)
				return err
			})
			L.Push(stringList(L, hist))
			return 1
		},
		"publish": func(L *lua.LState) int {
			room, data := checkRoom(L, 1), L.CheckString(2)
			opts := L.OptTable(3, L.NewTable())
			msg := hub.Message{Op: ws.OpText, Data: data}
			if v := opts.RawGetString("except"); v != lua.LNil {
				L.Push(v)
				msg.Except = checkMember(L, L.GetTop()).ID
				L.Pop(1)
			}
			keep, _ := opts.RawGetString("history").(lua.LNumber)
			msg.Keep = int(keep)
			if opts.RawGetString("kind") == lua.LString("binary") {
				msg.Op = ws.OpBinary
			}
			if v := opts.RawGetString("number"); v != lua.LNil {
				msg.Number = reservedNumber(L, v)
			}
			L.Push(lua.LNumber(st.publish(L, "rooms.publish", room, msg)))
			if msg.Number != 0 {
				st.published(room, msg.Number)
			}
			return 1
		},
		"reserve": func(L *lua.LState) int {
			room, after := checkRoom(L, 1), L.OptNumber(2, 0)
			if after < 0 || after > maxNumber || after != lua.LNumber(uint64(after)) {
				L.ArgError(2, "after must be a whole number from 0 to 2^53")
			}
			var n uint64
			st.sharedCall(L, "rooms.reserve", func(ctx context.Context) (err error) {
				n, err = rs.Reserve(ctx, room, uint64(after))
				return err
			})
			st.reserved(room, n)
			L.Push(lua.LNumber(n))
			return 1
		},
		"broadcast": func(L *lua.LState) int {
			room, data := checkRoom(L, 1), L.CheckString(2)
			msg := hub.Message{Op: messageKind(L, 4, 0), Data: data}
			if L.Get(3) != lua.LNil {
				msg.Except = checkMember(L, 3).ID
			}
			L.Push(lua.LNumber(st.publish(L, "rooms.broadcast", room, msg)))
			return 1
		},
		"leave": func(L *lua.LState) int {
			room, m := checkRoom(L, 1), checkMember(L, 2)
			var ok bool
			st.sharedCall(L, "rooms.leave", func(ctx context.Context) (err error) {
				ok, err = rs.Leave(ctx, room, m)
				return err
			})
			L.Push(lua.LBool(ok))
			return 1
		},
		"has": func(L *lua.LState) int {
			room, m := checkRoom(L, 1), checkMember(L, 2)
			var ok bool
			if m.Local != nil { // answered by this node's hub, in a cluster too
				ok, _ = rs.Has(context.Background(), room, m)
			} else {
				st.sharedCall(L, "rooms.has", func(ctx context.Context) (err error) {
					ok, err = rs.Has(ctx, room, m)
					return err
				})
			}
			L.Push(lua.LBool(ok))
			return 1
		},
		"count": func(L *lua.LState) int {
			room := checkRoom(L, 1)
			var n int
			st.sharedCall(L, "rooms.count", func(ctx context.Context) (err error) {
				n, err = rs.Count(ctx, room)
				return err
			})
			L.Push(lua.LNumber(n))
			return 1
		},
		"members": func(L *lua.LState) int {
			room := checkRoom(L, 1)
			var members []hub.Member
			st.sharedCall(L, "rooms.members", func(ctx context.Context) (err error) {
				members, err = rs.Members(ctx, room)
				return err
			})
			t := L.CreateTable(len(members), 0)
			for _, m := range members {
				t.Append(st.memberValue(m))
			}
			L.Push(luaval.Array(L, t))
			return 1
		},
		"list": func(L *lua.LState) int {
			var rooms []hub.RoomInfo
			st.sharedCall(L, "rooms.list", func(ctx context.Context) (err error) {
				rooms, err = rs.List(ctx)
				return err
			})
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
	})
}

// publish sends msg to room and returns to how many members. The frame is
// encoded here, once, for the members on this node (in a cluster each
// node encodes it once for its own).
func (st *state) publish(L *lua.LState, name, room string, msg hub.Message) int {
	if st.svc.cluster == nil {
		msg.Frame = wsproto.FrameString(msg.Op, msg.Data)
	}
	var n int
	st.sharedCall(L, name, func(ctx context.Context) (err error) {
		n, err = st.svc.rooms.Publish(ctx, room, msg)
		return err
	})
	return n
}

// sharedCall runs op, a call named name on what the service shares with
// other nodes (rooms, clients, the store). In process it answers at once,
// on the state; in a cluster it waits on Redis, so the handler is
// suspended meanwhile (the state serves others) and op is bounded by
// cluster.CallTimeout. An error is raised in the script as "name: ...".
func (st *state) sharedCall(L *lua.LState, name string, op func(context.Context) error) {
	var err error
	if st.svc.cluster == nil {
		err = op(context.Background())
	} else {
		st.await(func() {
			ctx, cancel := st.callContext()
			defer cancel()
			err = op(ctx)
		})
	}
	if err != nil {
		L.RaiseError("%s: %v", name, err)
	}
}

// callTimeout bounds one call a script makes to the cluster.
const callTimeout = cluster.CallTimeout

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
