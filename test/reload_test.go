package test

import (
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// tagScript answers every message with tag:message.
func tagScript(tag string) string {
	return `return { message = function(c, d) c:send("` + tag + `:" .. d) end }` + "\n"
}

// reloadGateway serves tagScript("one") at /tag from a temporary folder.
func reloadGateway(t *testing.T, extraArgs ...string) (*gatewayProc, string) {
	t.Helper()
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"tag.lua":     tagScript("one"),
		"config.yaml": "endpoints:\n  - path: /tag\n    script: tag.lua\n    states: 2\n",
	})
	args := append([]string{"run", "-config", "config.yaml", "-listen", "127.0.0.1:0", "-log-format", "json"}, extraArgs...)
	return startGatewayIn(t, dir, args...), filepath.Join(dir, "tag.lua")
}

// adminStatus reads /admin/status for /tag.
func adminStatus(t *testing.T, g *gatewayProc) map[string]any {
	t.Helper()
	resp, err := http.Get("http://" + g.addr + "/admin/status")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct{ Endpoints map[string]map[string]any }
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	return body.Endpoints["/tag"]
}

func TestSavingAScriptChangesWhatConnectedClientsGet(t *testing.T) {
	g, script := reloadGateway(t)
	c := dial(t, g.url("/tag"))
	if got := ask(t, c, "a"); got != "one:a" {
		t.Fatalf("before: %q", got)
	}
	first := adminStatus(t, g)["version"]
	writeFiles(t, filepath.Dir(script), map[string]string{"tag.lua": tagScript("two")})
	eventually(t, "the new version", func() bool { return ask(t, c, "b") == "two:b" })
	st := adminStatus(t, g)
	if st["version"] == first || st["reloads"] != 1.0 {
		t.Errorf("status after a reload: %v", st)
	}
	if n := g.logs.count(`"script reloaded"`); n != 1 {
		t.Errorf("%d reload log lines, want 1", n)
	}
}

func TestABrokenScriptNeverReplacesTheRunningOne(t *testing.T) {
	g, script := reloadGateway(t)
	c := dial(t, g.url("/tag"))
	dir := filepath.Dir(script)
	writeFiles(t, dir, map[string]string{"tag.lua": "return { message = function(c, d)\n  c:send(d\nend }\n"})
	line := g.waitLog(`"script reload failed`)
	if err, _ := line["err"].(string); !strings.HasPrefix(err, "tag.lua:3: ") {
		t.Errorf("reload error %q, want it at tag.lua:3", err)
	}
	if got := ask(t, c, "x"); got != "one:x" {
		t.Errorf("after a broken save: %q", got)
	}
	if st := adminStatus(t, g); !strings.HasPrefix(st["last_error"].(string), "tag.lua:3: ") || st["reloads"] != 0.0 {
		t.Errorf("status %v", st)
	}
	if v := metricValue(t, g, `moongate_script_reloads_total{endpoint="/tag",result="error"}`); v != 1 {
		t.Errorf("script_reloads_total{error} = %v", v)
	}
	writeFiles(t, dir, map[string]string{"tag.lua": tagScript("fixed")})
	eventually(t, "the fixed version", func() bool { return ask(t, c, "y") == "fixed:y" })
}

func TestRenameAndReplaceSaveReloadsOnce(t *testing.T) {
	g, script := reloadGateway(t)
	c := dial(t, g.url("/tag"))
	tmp := script + ".swp"
	if err := os.WriteFile(tmp, []byte(tagScript("renamed")), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, script); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the renamed version", func() bool { return ask(t, c, "r") == "renamed:r" })
	time.Sleep(settled) // nothing more may happen
	if n := g.logs.count(`"script reloaded"`); n != 1 {
		t.Errorf("%d reloads, want 1", n)
	}
}

func TestABurstOfWritesAndAMissingFileEndInOneReload(t *testing.T) {
	g, script := reloadGateway(t)
	c := dial(t, g.url("/tag"))
	f, err := os.OpenFile(script, os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	final := tagScript("burst")
	for i := 0; i < len(final); i += 8 { // ten small writes, as an editor might flush them
		f.WriteString(final[i:min(i+8, len(final))])
		time.Sleep(2 * time.Millisecond)
	}
	f.Close()
	eventually(t, "the burst's final content", func() bool { return ask(t, c, "z") == "burst:z" })
	os.Remove(script)
	time.Sleep(settled) // longer than the watcher's quiet period: the file is missing when it looks
	writeFiles(t, filepath.Dir(script), map[string]string{"tag.lua": tagScript("back")})
	eventually(t, "the recreated file", func() bool { return ask(t, c, "w") == "back:w" })
	time.Sleep(settled) // nothing more may happen
	if n, failed := g.logs.count(`"script reloaded"`), g.logs.count(`"script reload failed`); n != 2 || failed != 0 {
		t.Errorf("%d reloads and %d failures, want 2 and 0:\n%s", n, failed, g.logs)
	}
}

func TestSIGHUPAndTheReloadCommand(t *testing.T) {
	g, script := reloadGateway(t, "-watch=false")
	c := dial(t, g.url("/tag"))
	writeFiles(t, filepath.Dir(script), map[string]string{"tag.lua": tagScript("hup")})
	time.Sleep(settled) // a watcher would have reloaded by now
	if got := ask(t, c, "1"); got != "one:1" {
		t.Fatalf("with -watch=false a save reloaded: %q", got)
	}
	g.cmd.Process.Signal(syscall.SIGHUP)
	eventually(t, "the reload on SIGHUP", func() bool { return ask(t, c, "2") == "hup:2" })

	writeFiles(t, filepath.Dir(script), map[string]string{"tag.lua": tagScript("cmd")})
	out, err := exec.Command(moongateBin, "reload", "-addr", g.addr).CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "/tag: reloaded, now ") {
		t.Fatalf("moongate reload: %v\n%s", err, out)
	}
	if got := ask(t, c, "3"); got != "cmd:3" {
		t.Errorf("after moongate reload: %q", got)
	}
	writeFiles(t, filepath.Dir(script), map[string]string{"tag.lua": "return nil"})
	out, err = exec.Command(moongateBin, "reload", "-addr", g.addr).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "the script must return a table of handlers") {
		t.Errorf("moongate reload of a broken script: %v\n%s", err, out)
	}
}

// TestRestoringTheRunningScriptClearsTheError: a broken save, then the
// running content saved back: the status's last error is cleared and the
// log says the script recovered.
func TestRestoringTheRunningScriptClearsTheError(t *testing.T) {
	g, script := reloadGateway(t)
	dir := filepath.Dir(script)
	writeFiles(t, dir, map[string]string{"tag.lua": "return {"})
	g.waitLog(`"script reload failed`)
	if st := adminStatus(t, g); st["last_error"] == nil {
		t.Fatalf("status after a broken save: %v", st)
	}
	writeFiles(t, dir, map[string]string{"tag.lua": tagScript("one")})
	g.waitLog(`"script recovered`)
	if st := adminStatus(t, g); st["last_error"] != nil || st["reloads"] != 0.0 {
		t.Errorf("status after the running content came back: %v", st)
	}
}

// TestTheReloadCommandFindsTheGatewayByItsConfig: started with -listen,
// the gateway does not listen where its config says; `moongate reload
// -config` reaches it all the same.
func TestTheReloadCommandFindsTheGatewayByItsConfig(t *testing.T) {
	g, script := reloadGateway(t, "-watch=false")
	dir := filepath.Dir(script)
	c := dial(t, g.url("/tag"))
	writeFiles(t, dir, map[string]string{"tag.lua": tagScript("found")})
	cmd := exec.Command(moongateBin, "reload", "-config", "config.yaml")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil || !strings.HasPrefix(string(out), "/tag: reloaded, now ") {
		t.Fatalf("moongate reload -config config.yaml: %v\n%s", err, out)
	}
	if got := ask(t, c, "x"); got != "found:x" {
		t.Errorf("after the reload: %q", got)
	}
}
