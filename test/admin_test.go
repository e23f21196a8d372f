package test

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// adminScript is a service that echoes, and raises an error (at line 6)
// when a message says "fail".
const adminScript = `local s = {}

function s.message(client, data)
  if data == "fail" then
    local t = nil
    return t.field
  end
  client:send(data)
end

return s
`

// adminFiles is a gateway serving adminScript at /svc.
func adminFiles() map[string]string {
	return map[string]string{
		"svc.lua":     adminScript,
		"config.yaml": "endpoints:\n  - path: /svc\n    script: svc.lua\n",
	}
}

// adminSnapshot is the part of /admin/state and /admin/live the tests read.
type adminSnapshot struct {
	Endpoints []struct {
		Path        string `json:"path"`
		Script      string `json:"script"`
		Version     string `json:"version"`
		LastError   string `json:"last_error"`
		Connections int    `json:"connections"`
		Latency     []struct {
			Handler string `json:"handler"`
			Calls   int    `json:"calls"`
		} `json:"latency"`
	} `json:"endpoints"`
	Errors []struct {
		Message string            `json:"message"`
		Attrs   map[string]string `json:"attrs"`
	} `json:"errors"`
}

func adminState(t *testing.T, g *gatewayProc) adminSnapshot {
	t.Helper()
	resp, err := http.Get("http://" + g.addr + "/admin/state")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var s adminSnapshot
	if resp.StatusCode != 200 {
		t.Fatalf("/admin/state: %d", resp.StatusCode)
	}
	if err := json.NewDecoder(resp.Body).Decode(&s); err != nil {
		t.Fatal(err)
	}
	return s
}

func TestAdminStateOfARunningGateway(t *testing.T) {
	g := startGateway(t, adminFiles())
	s := adminState(t, g)
	if len(s.Endpoints) != 1 || s.Endpoints[0].Path != "/svc" || s.Endpoints[0].Script != "svc.lua" || s.Endpoints[0].Version == "" {
		t.Fatalf("endpoints %+v", s.Endpoints)
	}
	c := dial(t, g.url("/svc"))
	send(t, c, "hi")
	recvText(t, c)
	send(t, c, "fail")
	eventually(t, "the connection, the handler's latency and the script error", func() bool {
		s = adminState(t, g)
		ep := s.Endpoints[0]
		return ep.Connections == 1 && len(ep.Latency) > 0 && len(s.Errors) > 0
	})
	if l := s.Endpoints[0].Latency[0]; l.Handler != "message" || l.Calls < 1 {
		t.Errorf("latency %+v", s.Endpoints[0].Latency)
	}
	if e := s.Errors[len(s.Errors)-1]; e.Message != "script error" || !strings.Contains(e.Attrs["err"], "svc.lua:6") {
		t.Errorf("error %+v", e)
	}
}

func TestAdminLiveShowsAReload(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, adminFiles())
	g := startGatewayIn(t, dir, "run", "-config", "config.yaml", "-listen", "127.0.0.1:0", "-log-format", "json", "-watch=false")
	ctx, cancel := contextWithTimeout(15 * time.Second)
	defer cancel()
	live, _, err := websocket.Dial(ctx, g.url("/admin/live"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer live.CloseNow()
	next := func() adminSnapshot {
		t.Helper()
		_, data, err := live.Read(ctx)
		if err != nil {
			t.Fatalf("live: %v", err)
		}
		var s adminSnapshot
		if err := json.Unmarshal(data, &s); err != nil {
			t.Fatal(err)
		}
		return s
	}
	first := next()
	if len(first.Endpoints) != 1 {
		t.Fatalf("first snapshot %+v", first)
	}
	reload := func() {
		req, _ := http.NewRequest("POST", "http://"+g.addr+"/admin/reload", nil)
		req.Header.Set("X-Moongate-Admin", "1")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	if err := os.WriteFile(filepath.Join(dir, "svc.lua"), []byte("local s = {}\n\nfunction s.message(\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	reload()
	for s := next(); !strings.Contains(s.Endpoints[0].LastError, "svc.lua:"); s = next() {
	}
	if err := os.WriteFile(filepath.Join(dir, "svc.lua"), []byte(strings.Replace(adminScript, "hi", "hello", 1)+"-- v2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	reload()
	for s := next(); s.Endpoints[0].Version == first.Endpoints[0].Version; s = next() {
	}
}

func TestAdminTokenFromTheEnvironment(t *testing.T) {
	const token = "a-token-of-32-bytes-for-the-test"
	var outside string
	if addrs, err := net.InterfaceAddrs(); err == nil {
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok && !n.IP.IsLoopback() && n.IP.To4() != nil {
				outside = n.IP.String()
				break
			}
		}
	}
	if outside == "" {
		t.Skip("no address but loopback: cannot reach the gateway from outside")
	}
	dir := t.TempDir()
	writeFiles(t, dir, adminFiles())
	g := startGatewayEnv(t, dir, []string{"MOONGATE_ADMIN_TOKEN=" + token},
		"run", "-config", "config.yaml", "-listen", "0.0.0.0:0", "-log-format", "json")
	_, port, _ := net.SplitHostPort(g.addr)
	get := func(auth string) int {
		req, _ := http.NewRequest("GET", "http://"+net.JoinHostPort(outside, port)+"/admin/state", nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := get(""); got != http.StatusUnauthorized {
		t.Errorf("from outside without the token: %d, want 401", got)
	}
	if got := get("Bearer " + token); got != http.StatusOK {
		t.Errorf("from outside with the token: %d, want 200", got)
	}
}

func TestAdminTokenTooShortStopsTheStart(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, adminFiles())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, moongateBin, "run", "-config", "config.yaml", "-listen", "127.0.0.1:0")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "MOONGATE_ADMIN_TOKEN=short")
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "MOONGATE_ADMIN_TOKEN") {
		t.Errorf("started with a 5-byte token: %v\n%s", err, out)
	}
}
