package test

import (
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// settled is longer than the watcher takes to judge a save (a quiet period
// and a second look): tests that check nothing more happens after a save
// wait this long.
const settled = time.Second

// writeInPieces saves content in place (truncate, then write) in pieces
// written gap apart, as a slow writer or an editor flushing would.
func writeInPieces(t *testing.T, path string, gap time.Duration, pieces ...string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for i, p := range pieces {
		if i > 0 {
			time.Sleep(gap) // the writer's pause: the scenario itself, not a wait
		}
		if _, err := f.WriteString(p); err != nil {
			t.Fatal(err)
		}
	}
}

// TestASaveInTwoPiecesReloadsOnce: a save written in two pieces 150 ms
// apart is judged once, complete: no failure is logged for the first
// half, and a first half that happens to parse is never served.
func TestASaveInTwoPiecesReloadsOnce(t *testing.T) {
	g, script := reloadGateway(t)
	c := dial(t, g.url("/tag"))

	// The first piece does not compile on its own.
	whole := tagScript("two")
	writeInPieces(t, script, 150*time.Millisecond, whole[:20], whole[20:])
	eventually(t, "the complete version", func() bool { return ask(t, c, "a") == "two:a" })

	// The first piece is a script that parses and returns handlers.
	const prefix = `local t = { message = function(c, d) c:send("prefix:" .. d) end }
local t2 = { message = function(c, d) c:send("three:" .. d) end }
return t`
	writeInPieces(t, script, 150*time.Millisecond, prefix, "2\n")
	eventually(t, "the complete version", func() bool {
		got := ask(t, c, "b")
		if strings.HasPrefix(got, "prefix:") {
			t.Fatalf("the first piece of a save was served: %q", got)
		}
		return got == "three:b"
	})
	time.Sleep(settled)
	reloaded, failed := g.logs.count(`"script reloaded"`), g.logs.count(`"script reload failed`)
	if reloaded != 2 || failed != 0 {
		t.Errorf("%d reloads and %d failures for two saves, want 2 and 0:\n%s", reloaded, failed, g.logs)
	}
}

// TestReloadReadsOnlyRegularFiles: a symlink to /dev/zero or to a FIFO
// renamed over a script is refused with a clear error, without reading
// it; the gateway keeps serving, and saves, SIGHUP and the admin reload
// keep working.
func TestReloadReadsOnlyRegularFiles(t *testing.T) {
	g, script := reloadGateway(t)
	dir := filepath.Dir(script)
	c := dial(t, g.url("/tag"))
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	for i, target := range []string{"/dev/zero", fifo} {
		link := filepath.Join(dir, "link")
		if err := os.Symlink(target, link); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(link, script); err != nil {
			t.Fatal(err)
		}
		eventually(t, "the refusal of "+target, func() bool {
			return g.logs.count(`"script reload failed`, "not a regular file") == i+1
		})
		if got := ask(t, c, "x"); got != "one:x" {
			t.Fatalf("after %s: %q", target, got)
		}
		// The admin reload answers (it used to hang on a FIFO) and says why.
		resp, err := http.Post("http://"+g.addr+"/admin/reload", "application/json", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Errorf("admin reload with %s in place of the script: %d", target, resp.StatusCode)
		}
	}
	if rss := mustPeakRSS(t, g); rss > 256<<20 {
		t.Errorf("peak RSS %d MiB: a special file was read", rss>>20)
	}
	// SIGHUP still reloads, and so does a save.
	os.Remove(script) // the symlink: writing through it would write to the FIFO
	writeFiles(t, dir, map[string]string{"tag.lua": tagScript("back")})
	eventually(t, "a save after the special files", func() bool { return ask(t, c, "y") == "back:y" })
	g.cmd.Process.Signal(syscall.SIGHUP)
	out, err := exec.Command(moongateBin, "reload", "-addr", g.addr).CombinedOutput()
	if err != nil {
		t.Errorf("moongate reload: %v\n%s", err, out)
	}
}
