package test

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
)

// processCPU returns the CPU time (user and system) the gateway process
// has used so far, from /proc/PID/stat. Tests of a budget compare it, not
// wall-clock time, which a loaded machine stretches.
func processCPU(t *testing.T, g *gatewayProc) time.Duration {
	t.Helper()
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", g.cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	// The command name, field 2, may hold spaces: count from its end.
	fields := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
	var user, system int64
	if _, err := fmt.Sscan(fields[11], &user); err != nil { // utime, field 14
		t.Fatal(err)
	}
	if _, err := fmt.Sscan(fields[12], &system); err != nil { // stime, field 15
		t.Fatal(err)
	}
	const ticks = 100 // USER_HZ, 100 on Linux
	return time.Duration(user+system) * time.Second / ticks
}
