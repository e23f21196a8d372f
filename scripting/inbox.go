package scripting

import (
	"sync"

	"github.com/moongate/moongate/gateway/config"
)

// inboxBytes bounds the bytes of the message payloads waiting in one
// state's inbox (the inbox channel bounds their number). A message takes
// its room before its payload is copied and gives it back when the state
// takes it out. The zero value is an empty inbox.
type inboxBytes struct {
	mu   sync.Mutex
	used int64
	room chan struct{} // closed, and forgotten, when room is given back; nil while nobody waits
}

// inboxLimit returns the endpoint's inbox byte bound.
func inboxLimit(ep config.Endpoint) int64 {
	if ep.InboxBytes <= 0 {
		return config.DefaultInboxBytes
	}
	return ep.InboxBytes
}

// acquire takes n bytes of room within limit, waiting for the state to take
// messages out while there is not enough; an inbox holding no payload
// takes one of any size, so that no message waits forever. It gives up,
// reporting false, when done or stop is closed.
func (b *inboxBytes) acquire(n, limit int64, done, stop <-chan struct{}) bool {
	if n == 0 {
		return true
	}
	for {
		b.mu.Lock()
		if b.used == 0 || b.used+n <= limit {
			b.used += n
			b.mu.Unlock()
			return true
		}
		if b.room == nil {
			b.room = make(chan struct{})
		}
		room := b.room
		b.mu.Unlock()
		select {
		case <-room:
		case <-done:
			return false
		case <-stop:
			return false
		}
	}
}

// release gives back n bytes and wakes whoever waits for room.
func (b *inboxBytes) release(n int64) {
	if n == 0 {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.used -= n
	if b.room != nil {
		close(b.room)
		b.room = nil
	}
}
