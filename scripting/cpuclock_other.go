//go:build !linux

package scripting

import "time"

// threadClock falls back to wall-clock time where a thread's CPU clock
// cannot be read by another thread.
type threadClock int32

var clockOrigin = time.Now()

// currentThreadClock returns the (wall) clock.
func currentThreadClock() threadClock { return 0 }

// now returns the time since the process started.
func (threadClock) now() time.Duration { return time.Since(clockOrigin) }
