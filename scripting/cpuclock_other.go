//go:build !linux

package scripting

import (
	"runtime"
	"time"
)

// threadClock falls back to wall-clock time where a thread's CPU clock
// cannot be read by another thread.
type threadClock struct{}

var clockOrigin = time.Now()

// lockThreadClock locks the calling goroutine to its OS thread and returns
// a clock (here, the wall clock).
func lockThreadClock() *threadClock {
	runtime.LockOSThread()
	return &threadClock{}
}

// now returns the time since the process started.
func (*threadClock) now() time.Duration { return time.Since(clockOrigin) }
