//go:build linux

package scripting

import (
	"runtime"
	"time"

	"golang.org/x/sys/unix"
)

// threadClock reads the CPU time one OS thread has used. A handler's budget
// is charged in this time, not in wall-clock time, so a handler that waits
// for a CPU on a loaded machine is not stopped for time it did not run.
type threadClock struct{ id int32 } // the thread's CPU clock id

// lockThreadClock locks the calling goroutine to its OS thread (so that the
// thread's CPU time is the goroutine's) and returns that thread's clock,
// which is never modified. The caller undoes the lock with
// runtime.UnlockOSThread.
func lockThreadClock() *threadClock {
	runtime.LockOSThread()
	// Linux names the CPU clock of thread tid (~tid << 3) | 6: a
	// per-thread (4) scheduler clock (2); see clock_getcpuclockid(3).
	return &threadClock{id: int32(^uint32(unix.Gettid())<<3) | 6}
}

// now returns the CPU time the thread has used; zero if it cannot be read
// (the thread has exited).
func (c *threadClock) now() time.Duration {
	var ts unix.Timespec
	if err := unix.ClockGettime(c.id, &ts); err != nil {
		return 0
	}
	return time.Duration(ts.Nano())
}
