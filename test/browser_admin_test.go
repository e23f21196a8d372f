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

// TestAdminConsoleDarkTheme opens /admin/ with the system preferring a
// dark theme, with something in every colour the console uses (a live
// endpoint, a script error, a successful and a failed reload), and runs
// axe-core on it: no serious or critical violation (colour contrast
// included).
func TestAdminConsoleDarkTheme(t *testing.T) {
	newTab := newBrowser(t)
	dir := t.TempDir()
	writeFiles(t, dir, adminFiles())
	g := startGatewayIn(t, dir, "run", "-config", "config.yaml", "-listen", "127.0.0.1:0", "-log-format", "json", "-watch=false")
	tab := newTab()
	run(t, tab, "the console opens in the dark theme",
		chromedp.EmulateViewport(1280, 800),
		prefersDark(),
		chromedp.Navigate("http://"+g.addr+"/admin/"),
		waitJS(`matchMedia("(prefers-color-scheme: dark)").matches`),
		waitText("#feed", "Live"),
		waitText("#endpoints", "/svc"))
	// The page is dark: light text on a dark background.
	if !jsBool(t, tab, "dark colours", `(() => {
		const lum = (c) => { const [r, g, b] = c.match(/\d+/g).map(Number); return 0.2126 * r + 0.7152 * g + 0.0722 * b; };
		const s = getComputedStyle(document.body);
		return lum(s.backgroundColor) < 60 && lum(s.color) > 180; })()`) {
		t.Error("the console is not dark when the system prefers dark")
	}
	c := dial(t, g.url("/svc"))
	defer c.CloseNow()
	send(t, c, "fail")
	run(t, tab, "the script error shows up", waitText("#errors", "svc.lua:6"))
	run(t, tab, "a reload that works", chromedp.Click(chromedp.ID("reload")),
		waitJS(`document.getElementById("reload-result").className === "ok"`))
	axeCheck(t, tab, "admin-dark-reloaded")
	if err := os.WriteFile(filepath.Join(dir, "svc.lua"), []byte("return {"), 0o644); err != nil {
		t.Fatal(err)
	}
	run(t, tab, "a reload that fails", chromedp.Click(chromedp.ID("reload")),
		waitJS(`document.getElementById("reload-result").className === "error"`),
		waitJS(`document.querySelector('#endpoints tr[data-endpoint="/svc"]').textContent.includes("svc.lua:")`))
	saveScreenshot(t, tab, "artifacts/admin-dark.png")
	axeCheck(t, tab, "admin-dark")
}
