package test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
)

// TestChatPageKeepsTheTokenInMemoryOnly: a page opened with ?token= signs
// in, and then neither the address nor sessionStorage nor the history
// entry holds the token. A second tab of the same user chats under the
// same nick next to the first; the other user sees one Alice. A reload
// asks for the token again.
func TestChatPageKeepsTheTokenInMemoryOnly(t *testing.T) {
	newTab := newBrowser(t)
	www, _ := filepath.Abs("../scripts/chat/www")
	dir := t.TempDir()
	files := chatFiles(t, 2, "    auth: {secret_env: TEST_CHAT_SECRET, required: true}\n")
	files["config.yaml"] += "static:\n  - prefix: /\n    dir: " + www + "\n"
	writeFiles(t, dir, files)
	g := startGatewayEnv(t, dir, []string{"TEST_CHAT_SECRET=test-secret"},
		"run", "-config", "config.yaml", "-listen", "127.0.0.1:0", "-log-format", "json")
	tok := token(t, "test-secret", "-sub", "u-1", "-name", "Alice", "-ttl", "1h")
	page := "http://" + g.addr + "/?lang=en&token=" + tok + "#top"

	tab1, tab2 := newTab(), newTab()
	for i, tab := range []context.Context{tab1, tab2} {
		run(t, tab, "signing in with ?token=",
			chromedp.Navigate(page),
			waitText("#status", "online as Alice"),
			waitText("#joined", "#lobby"))
		if addr := value(t, tab, "the address", chromedp.Evaluate[string](`location.search + location.hash`)); addr != "?lang=en#top" {
			t.Errorf("tab %d: the address ends with %q, want the token gone and the rest kept", i+1, addr)
		}
		kept := value(t, tab, "what the tab keeps", chromedp.Evaluate[string](
			`JSON.stringify(Object.entries(sessionStorage)) + JSON.stringify(history.state) + location.href`))
		if strings.Contains(kept, tok) || strings.Contains(kept, "token=") {
			t.Errorf("tab %d keeps the token: %s", i+1, kept)
		}
	}

	bob := signedIn(t, g, token(t, "test-secret", "-sub", "u-2", "-name", "Bob", "-ttl", "1h"), "Bob")
	if j := bob.join("lobby"); joinStrs(j["members"]) != "Alice,Bob" {
		t.Errorf("bob sees members %v, want Alice once", j["members"])
	}
	run(t, tab2, "the second tab says something",
		waitText("#members", "Bob"),
		chromedp.SendKeys(chromedp.ID("text"), "from tab two\r"))
	if e := bob.expect("message"); e.str("from") != "Alice" || e.str("text") != "from tab two" {
		t.Errorf("bob got %v", e)
	}
	run(t, tab1, "the first tab sees it", waitText("#messages", "from tab two"))
	if n := value(t, tab1, "members", chromedp.Evaluate[int](
		`[...document.querySelectorAll("#members li")].filter((li) => li.textContent === "Alice").length`)); n != 1 {
		t.Errorf("the first tab lists Alice %d times", n)
	}

	run(t, tab1, "a reload asks for the token again",
		chromedp.Reload(),
		waitText("#login-error", "sign in again"))
	bob.quiet() // the other tab is still there: Alice did not leave
}
