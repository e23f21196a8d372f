package scripting

import (
	"context"

	lua "github.com/yuin/gopher-lua"
)

// Reserved numbers (rooms.reserve).
//
// A number a handler reserves holds its room's later messages back until
// it is published or given up; the handler that reserved it is the one to
// publish it. What a handler has not published when it returns, normally
// or by an error, is given up then, so a failing handler never holds a
// room.

// maxNumber is the largest number a Lua number holds exactly (2^53).
const maxNumber = 1 << 53

// reservation is a number a handler reserved in a room.
type reservation struct {
	room string
	n    uint64
}

// reservedNumber reads opts.number of rooms.publish.
func reservedNumber(L *lua.LState, v lua.LValue) uint64 {
	n, ok := v.(lua.LNumber)
	if !ok || n < 1 || n > maxNumber || n != lua.LNumber(uint64(n)) {
		L.RaiseError("rooms.publish: number must be a number rooms.reserve returned")
	}
	return uint64(n)
}

// reserved records that the running handler holds n in room.
func (st *state) reserved(room string, n uint64) {
	if r := st.cur; r != nil {
		r.reserved = append(r.reserved, reservation{room, n})
	}
}

// published records that the running handler published n in room.
func (st *state) published(room string, n uint64) {
	r := st.cur
	if r == nil {
		return
	}
	for i, res := range r.reserved {
		if res == (reservation{room, n}) {
			r.reserved = append(r.reserved[:i], r.reserved[i+1:]...)
			return
		}
	}
}

// giveUpReserved gives up what r's handler, which has returned, reserved
// and did not publish. In a cluster that is a call to Redis, made in the
// background: the state goes on at once.
func (st *state) giveUpReserved(r *runner) {
	if len(r.reserved) == 0 {
		return
	}
	left := r.reserved
	r.reserved = nil
	rs := st.svc.rooms
	if st.svc.cluster == nil {
		for _, res := range left {
			rs.GiveUp(context.Background(), res.room, res.n) //nolint:errcheck // in process: never fails
		}
		return
	}
	st.svc.wg.Add(1)
	go func() {
		defer st.svc.wg.Done()
		ctx, cancel := st.callContext()
		defer cancel()
		for _, res := range left {
			if err := rs.GiveUp(ctx, res.room, res.n); err != nil {
				st.svc.log.Warn("a reserved number could not be given up; it expires", "room", res.room, "number", res.n, "err", err)
			}
		}
	}()
}
