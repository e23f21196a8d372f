// Package rlimit raises the process's open-file limit, so that a gateway
// (or the load tool) can hold tens of thousands of connections.
package rlimit

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// RaiseOpenFiles raises the open-file limit as far as this process may: to
// the kernel's ceiling (fs.nr_open) when it has the privilege, else to its
// hard limit. It returns the limit now in force.
func RaiseOpenFiles() (uint64, error) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, fmt.Errorf("read open-file limit: %w", err)
	}
	if ceiling := kernelCeiling(); ceiling > lim.Max {
		raised := syscall.Rlimit{Cur: ceiling, Max: ceiling}
		if syscall.Setrlimit(syscall.RLIMIT_NOFILE, &raised) == nil {
			return ceiling, nil
		}
	}
	lim.Cur = lim.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, fmt.Errorf("raise open-file limit: %w", err)
	}
	return lim.Cur, nil
}

// kernelCeiling returns fs.nr_open, or 0 when it cannot be read.
func kernelCeiling() uint64 {
	b, err := os.ReadFile("/proc/sys/fs/nr_open")
	if err != nil {
		return 0
	}
	n, _ := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	return n
}
