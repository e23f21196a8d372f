package test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
)

// TestAdminConsoleInTheBrowser opens /admin/ at 1280×800 on a real
// gateway: it shows the endpoint, a connection count that follows a
// client, a script error as it happens, and reloads with its button.
func TestAdminConsoleInTheBrowser(t *testing.T) {
	newTab := newBrowser(t)
	dir := t.TempDir()
	writeFiles(t, dir, adminFiles())
	g := startGatewayIn(t, dir, "run", "-config", "config.yaml", "-listen", "127.0.0.1:0", "-log-format", "json", "-watch=false")
	tab := newTab()
	const conns = `#endpoints tr[data-endpoint="/svc"] .connections`
	run(t, tab, "the console opens and shows the endpoint",
		chromedp.EmulateViewport(1280, 800),
		chromedp.Navigate("http://"+g.addr+"/admin/"),
		waitText("#feed", "Live"),
		waitText("#endpoints", "/svc"),
		waitText("#endpoints", "svc.lua"),
		waitText(conns, "0"))
	version := value(t, tab, "the version shown", chromedp.Evaluate[string](
		`document.querySelector('#endpoints tr[data-endpoint="/svc"] .version').textContent`))

	c := dial(t, g.url("/svc"))
	run(t, tab, "the connection count follows a client", waitText(conns, "1"))
	send(t, c, "fail")
	run(t, tab, "the script error shows up live", waitText("#errors", "svc.lua:6"))

	if err := os.WriteFile(filepath.Join(dir, "svc.lua"), []byte(adminScript+"-- v2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	run(t, tab, "the reload button reloads",
		chromedp.Click(chromedp.ID("reload")),
		waitText("#reload-result", "Reloaded: /svc"))
	run(t, tab, "the new version shows",
		chromedp.Poll[chromedp.Void](`document.querySelector('#endpoints tr[data-endpoint="/svc"] .version').textContent !== `+jsString(version)))
	if !value(t, tab, "labelled controls and headings", chromedp.Evaluate[bool](
		`document.querySelector("h1") !== null && document.querySelectorAll("h2").length >= 5 &&
		 document.getElementById("reload").textContent.trim() !== ""`)) {
		t.Error("the page lacks its headings or the button its name")
	}
	c.CloseNow()
	run(t, tab, "the count goes back down", waitText(conns, "0"))
	saveScreenshot(t, tab, "artifacts/admin.png")
	axeCheck(t, tab, "admin")
	if strings.TrimSpace(version) == "" {
		t.Error("no version shown")
	}
}
