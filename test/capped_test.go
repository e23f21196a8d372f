package test

// A gateway under an address-space cap, for tests that attack its memory:
// built without the race detector (which multiplies memory) and without
// cgo, run under prlimit --as, so that a bound that fails kills the
// gateway rather than the machine; its peak resident memory is read from
// /proc.

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"sync"
	"testing"
)

const (
	// memoryBar is the most resident memory the gateway may reach under an attack.
	memoryBar = 512 << 20
	// addressCap is the address space the gateway gets (Go reserves some
	// 750 MB of address space at start): a gateway that would grow past it
	// dies instead of taking the machine down.
	addressCap = 2 << 30
)

// cappedBin is a moongate binary built without the race detector and
// without cgo (glibc's per-thread arenas reserve address space that an
// address-space cap counts), once per test run.
var cappedBin struct {
	once sync.Once
	path string
	err  error
}

func cappedBinary(t *testing.T) string {
	t.Helper()
	cappedBin.once.Do(func() {
		cappedBin.path = filepath.Join(filepath.Dir(moongateBin), "moongate-capped")
		build := exec.Command("go", "build", "-o", cappedBin.path, "../cmd/moongate")
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := build.CombinedOutput(); err != nil {
			cappedBin.err = fmt.Errorf("building moongate without the race detector: %v\n%s", err, out)
		}
	})
	if cappedBin.err != nil {
		t.Fatal(cappedBin.err)
	}
	return cappedBin.path
}

// startCapped runs the gateway like startGatewayIn, under prlimit --as.
func startCapped(t *testing.T, dir string, args ...string) *gatewayProc {
	t.Helper()
	prlimit, err := exec.LookPath("prlimit")
	if err != nil {
		t.Skip("prlimit not found: memory attacks need an address-space cap")
	}
	bin := cappedBinary(t)
	cmd := exec.Command(prlimit, append([]string{"--as=" + strconv.Itoa(addressCap), "--", bin}, args...)...)
	cmd.Dir = dir
	return launch(t, cmd)
}

// peakRSS returns the gateway's peak resident memory so far (VmHWM), or
// false once the process is gone.
func peakRSS(g *gatewayProc) (int64, bool) {
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", g.cmd.Process.Pid))
	if err != nil {
		return 0, false
	}
	m := regexp.MustCompile(`(?m)^VmHWM:\s+(\d+) kB$`).FindSubmatch(status)
	if m == nil {
		return 0, false
	}
	kb, _ := strconv.ParseInt(string(m[1]), 10, 64)
	return kb << 10, true
}

// startCappedFiles writes files to a new folder and serves its config.yaml
// from a capped gateway.
func startCappedFiles(t *testing.T, files map[string]string) *gatewayProc {
	t.Helper()
	dir := t.TempDir()
	writeFiles(t, dir, files)
	return startCapped(t, dir, "run", "-config", "config.yaml", "-listen", "127.0.0.1:0", "-log-format", "json")
}

// mustPeakRSS is peakRSS for a gateway that must still be running.
func mustPeakRSS(t *testing.T, g *gatewayProc) int64 {
	t.Helper()
	p, ok := peakRSS(g)
	if !ok {
		t.Fatalf("no peak RSS: the gateway is gone\n%s", g.logs)
	}
	return p
}
