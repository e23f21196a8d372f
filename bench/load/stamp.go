package load

import (
	"encoding/binary"
	"encoding/hex"
	"time"
)

// stampLen is the length of a send-time stamp in a message: 16 hex digits.
const stampLen = 16

// putStamp writes t into the first stampLen bytes of p as hex text (so the
// message stays valid UTF-8 for text frames).
func putStamp(p []byte, t time.Time) {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(t.UnixNano()))
	hex.Encode(p[:stampLen], b[:])
}

// readStamp returns the time stamped at the start of p.
func readStamp(p []byte) (time.Time, bool) {
	var b [8]byte
	if len(p) < stampLen {
		return time.Time{}, false
	}
	if _, err := hex.Decode(b[:], p[:stampLen]); err != nil {
		return time.Time{}, false
	}
	return time.Unix(0, int64(binary.BigEndian.Uint64(b[:]))), true
}

// newPayload returns a message of size bytes ready for putStamp: the stamp
// is followed by filler text.
func newPayload(size int) []byte {
	p := make([]byte, max(size, stampLen))
	for i := range p {
		p[i] = 'a' + byte(i%26)
	}
	return p
}

// pacer spaces sends rate per second apart, measuring from when each send
// was due, so a stalled server shows as latency instead of slowing the
// load (no coordinated omission). A zero rate sends as fast as possible.
type pacer struct {
	interval time.Duration
	next     time.Time
}

func newPacer(rate float64, phase float64) *pacer {
	if rate <= 0 {
		return &pacer{}
	}
	iv := time.Duration(float64(time.Second) / rate)
	return &pacer{interval: iv, next: time.Now().Add(time.Duration(phase * float64(iv)))}
}

// wait sleeps until the next send is due and returns the time it was due.
func (p *pacer) wait() time.Time {
	if p.interval == 0 {
		return time.Now()
	}
	due := p.next
	if d := time.Until(due); d > 0 {
		time.Sleep(d)
	}
	p.next = p.next.Add(p.interval)
	return due
}
