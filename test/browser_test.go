package test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// chromiumPath finds Debian's Chromium. Without it the browser tests skip,
// except under CI=true, where they fail: CI must run them.
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("no Chromium found: `make test` installs Debian's chromium (.ci/ensure-chromium)")
	}
	t.Skip("no Chromium found (run `make test` as root to install Debian's chromium); skipping the browser test")
	return ""
}

// newBrowser starts a headless Chromium and returns a function that opens
// a new tab (its own sessionStorage) in it.
func newBrowser(t *testing.T) func() context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath(t)),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("ignore-certificate-errors", true), // the TLS test serves a certificate it made
		chromedp.WindowSize(1000, 700),
	)
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancelAlloc)
	browser, cancelBrowser := chromedp.NewContext(alloc)
	t.Cleanup(cancelBrowser)
	if err := chromedp.Do(browser); err != nil {
		t.Fatalf("starting Chromium: %v", err)
	}
	return func() context.Context {
		tab, cancel := chromedp.NewContext(browser)
		t.Cleanup(cancel)
		if err := chromedp.Do(tab); err != nil { // opens the tab; it lives as long as tab
			t.Fatalf("opening a tab: %v", err)
		}
		return tab
	}
}

// run runs browser actions with a deadline, failing the test on error.
func run(t *testing.T, tab context.Context, what string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(tab, 20*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// waitText waits until the element matched by sel contains text.
func waitText(sel, text string) chromedp.Action[chromedp.Void] {
	return chromedp.Poll[chromedp.Void](`(document.querySelector(`+jsString(sel)+`)?.textContent || "").includes(`+jsString(text)+`)`,
		chromedp.WithPollingInterval(50*time.Millisecond))
}

// value runs an action that returns a value, failing the test on error.
func value[T any](t *testing.T, tab context.Context, what string, action chromedp.Action[T]) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(tab, 20*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, action)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	return v
}

func jsString(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)
	return `"` + r.Replace(s) + `"`
}

func TestChatInTwoBrowserPages(t *testing.T) {
	newTab := newBrowser(t)
	www, _ := filepath.Abs("../scripts/chat/www")
	files := chatFiles(t, 2, "")
	files["config.yaml"] += "static:\n  - prefix: /\n    dir: " + www + "\n"
	g := startGateway(t, files)
	page := "http://" + g.addr + "/"

	alice, bob := newTab(), newTab()
	for _, p := range []struct {
		tab  context.Context
		nick string
	}{{alice, "alice"}, {bob, "bob"}} {
		run(t, p.tab, p.nick+" signs in",
			chromedp.Navigate(page),
			chromedp.WaitVisible(chromedp.ID("nick")),
			chromedp.SendKeys(chromedp.ID("nick"), p.nick),
			chromedp.Click(chromedp.ID("enter")),
			waitText("#status", "online as "+p.nick),
			waitText("#joined", "#lobby"),
		)
	}
	run(t, alice, "alice sees bob in the member list", waitText("#members", "bob"))
	run(t, alice, "alice says hello",
		chromedp.SendKeys(chromedp.ID("text"), "hello bob\r"),
		waitText("#messages", "hello bob"))
	run(t, bob, "bob receives it", waitText("#messages", "hello bob"))

	evil := `<script>window.pwned=1</script><b>bold</b>`
	run(t, bob, "bob sends markup", chromedp.SendKeys(chromedp.ID("text"), evil+"\r"))
	run(t, alice, "alice sees the markup as text", waitText("#messages", evil))
	if !value(t, alice, "looking for elements made from a message",
		chromedp.Evaluate[bool](`document.querySelectorAll("#messages b, #messages script").length === 0 && !window.pwned`)) {
		t.Error("a message was rendered as HTML")
	}

	run(t, bob, "bob reloads, reconnects and sees the history",
		chromedp.Reload(),
		waitText("#status", "online as bob"),
		waitText("#messages", "hello bob"),
		waitText("#members", "alice"))
	run(t, alice, "alice sees bob come back", waitText("#members", "bob"))

	saveScreenshot(t, alice, "artifacts/chat.png")

	// On a phone-width screen the message box stays usable and the side panels fold away.
	run(t, bob, "phone width", chromedp.EmulateViewport(390, 800), waitText("#messages", "hello bob"))
	if !value(t, bob, "phone layout", chromedp.Evaluate[bool](
		`(() => { const r = document.getElementById("text").getBoundingClientRect();
		  return r.width > 200 && r.right <= 390 && getComputedStyle(document.querySelector(".members")).display === "none"; })()`)) {
		t.Error("the chat does not fit a phone-width screen")
	}
	saveScreenshot(t, bob, "artifacts/chat-phone.png")
}

// saveScreenshot keeps a PNG of the tab as a test artifact.
func saveScreenshot(t *testing.T, tab context.Context, path string) {
	t.Helper()
	png := value(t, tab, "screenshot", chromedp.FullScreenshot(100))
	os.MkdirAll(filepath.Dir(path), 0o755)
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Error(err)
	}
}

// TestChatPageOverTLS opens the chat page over https: the page connects
// with wss:// by itself.
func TestChatPageOverTLS(t *testing.T) {
	newTab := newBrowser(t)
	dir := t.TempDir()
	certPEM, keyPEM := selfSigned(t)
	www, _ := filepath.Abs("../scripts/chat/www")
	files := chatFiles(t, 1, "")
	files["config.yaml"] += "static:\n  - prefix: /\n    dir: " + www + "\ntls: {cert: cert.pem, key: key.pem}\n"
	files["cert.pem"], files["key.pem"] = string(certPEM), string(keyPEM)
	writeFiles(t, dir, files)
	g := startGatewayIn(t, dir, "run", "-config", "config.yaml", "-listen", "127.0.0.1:0", "-log-format", "json")
	tab := newTab()
	run(t, tab, "sign in over https",
		chromedp.Navigate("https://"+g.addr+"/"),
		chromedp.WaitVisible(chromedp.ID("nick")),
		chromedp.SendKeys(chromedp.ID("nick"), "tls_user"),
		chromedp.Click(chromedp.ID("enter")),
		waitText("#status", "online as tls_user"),
		chromedp.SendKeys(chromedp.ID("text"), "over wss\r"),
		waitText("#messages", "over wss"))
}

// TestChatPageShowsAnnounce: an announce posted over HTTP shows in the
// page as from "announcement", as text.
func TestChatPageShowsAnnounce(t *testing.T) {
	newTab := newBrowser(t)
	www, _ := filepath.Abs("../scripts/chat/www")
	files := chatFiles(t, 1, "")
	files["config.yaml"] += "static:\n  - prefix: /\n    dir: " + www + "\n"
	dir := t.TempDir()
	writeFiles(t, dir, files)
	g := startGatewayEnv(t, dir, []string{"MOONGATE_ANNOUNCE_SECRET=s3cret"},
		"run", "-config", "config.yaml", "-listen", "127.0.0.1:0", "-log-format", "json")
	tab := newTab()
	run(t, tab, "ada signs in",
		chromedp.Navigate("http://"+g.addr+"/"),
		chromedp.WaitVisible(chromedp.ID("nick")),
		chromedp.SendKeys(chromedp.ID("nick"), "ada"),
		chromedp.Click(chromedp.ID("enter")),
		waitText("#joined", "#lobby"))
	text := "<b>maintenance</b> at noon"
	if status, body := post(t, g, "POST", "/chat/api/announce", "s3cret", `{"room": "lobby", "text": "`+text+`"}`); status != 200 {
		t.Fatalf("announce: %d %s", status, body)
	}
	run(t, tab, "ada sees the announce", waitText("#messages .announce", "announcement"+text))
	if !value(t, tab, "looking for elements made from the announce",
		chromedp.Evaluate[bool](`document.querySelectorAll("#messages b").length === 0`)) {
		t.Error("an announce was rendered as HTML")
	}
}
