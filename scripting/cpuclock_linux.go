//go:build linux

package scripting

import (
	"time"

	"golang.org/x/sys/unix"
)

// threadClock is the CPU clock of one OS thread. A handler's budget is
// charged in this time, not in wall-clock time, so a handler that waits
// for a CPU on a loaded machine is not stopped for time it did not run.
// The goroutine running a handler is locked to its thread for the call,
// so the thread's CPU time is the handler's.
type threadClock int32

// currentThreadClock returns the calling thread's CPU clock. Linux names
// the CPU clock of thread tid (~tid << 3) | 6: a per-thread (4) scheduler
// clock (2); see clock_getcpuclockid(3). Any thread of the process may
// read it.
func currentThreadClock() threadClock {
	return threadClock(int32(^uint32(unix.Gettid())<<3) | 6)
}

// now returns the CPU time the thread has used; zero if it cannot be read
// (the thread has exited).
func (c threadClock) now() time.Duration {
	var ts unix.Timespec
	if err := unix.ClockGettime(int32(c), &ts); err != nil {
		return 0
	}
	return time.Duration(ts.Nano())
}
