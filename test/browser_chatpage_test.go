package test

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"
)

// The two screens the chat page is tried at: a laptop and a phone.
var viewports = []struct {
	name string
	w, h int64
}{{"desktop", 1280, 800}, {"phone", 390, 844}}

// chatPageGateway serves scripts/chat/chat.lua at /chat and its page at /,
// with extra endpoint settings and environment variables.
func chatPageGateway(t *testing.T, extra string, env []string, args ...string) *gatewayProc {
	t.Helper()
	www, _ := filepath.Abs("../scripts/chat/www")
	files := chatFiles(t, 2, extra)
	files["config.yaml"] += "static:\n  - prefix: /\n    dir: " + www + "\n"
	dir := t.TempDir()
	writeFiles(t, dir, files)
	if len(args) == 0 {
		args = []string{"-listen", "127.0.0.1:0"}
	}
	return startGatewayEnv(t, dir, env, append([]string{"run", "-config", "config.yaml", "-log-format", "json"}, args...)...)
}

// pageSignIn opens the page in tab at a viewport and signs in as nick.
func pageSignIn(t *testing.T, tab context.Context, page, nick string, w, h int64) {
	t.Helper()
	run(t, tab, nick+" signs in",
		chromedp.EmulateViewport(w, h),
		chromedp.Navigate(page),
		chromedp.WaitVisible(chromedp.ID("nick")),
		chromedp.SendKeys(chromedp.ID("nick"), nick),
		chromedp.Click(chromedp.ID("enter")),
		waitText("#status", "online as "+nick),
		waitText("#joined", "#lobby"))
}

// waitJS waits until the JavaScript expression is true.
func waitJS(expr string) chromedp.Action[chromedp.Void] {
	return chromedp.Poll[chromedp.Void](expr, chromedp.WithPollingInterval(50*time.Millisecond))
}

// typeLine puts text in the message box (by value, so no key is
// interpreted) and submits it as Enter would.
func typeLine(text string) chromedp.Action[chromedp.Void] {
	return chromedp.Evaluate[chromedp.Void](`(() => { const t = document.getElementById("text"); t.value = ` + jsString(text) +
		`; t.dispatchEvent(new Event("input")); document.getElementById("say-form").requestSubmit(); })()`)
}

func jsBool(t *testing.T, tab context.Context, what, expr string) bool {
	t.Helper()
	return value(t, tab, what, chromedp.Evaluate[bool](expr))
}

// TestChatPageSignInView: before sign-in only the sign-in card is there:
// the chat screen is not drawn, says no "connecting…" and has no tab
// stops. Both views pass axe-core with no serious or critical violation,
// at a laptop's and a phone's size.
func TestChatPageSignInView(t *testing.T) {
	newTab := newBrowser(t)
	g := chatPageGateway(t, "", nil)
	page := "http://" + g.addr + "/"
	for _, vp := range viewports {
		t.Run(vp.name, func(t *testing.T) {
			tab := newTab()
			run(t, tab, "open the page",
				chromedp.EmulateViewport(vp.w, vp.h),
				chromedp.Navigate(page),
				chromedp.WaitVisible(chromedp.ID("nick")))
			if !jsBool(t, tab, "the chat screen", `getComputedStyle(document.getElementById("chat")).display === "none"`) {
				t.Error("the chat screen is drawn under the sign-in card")
			}
			run(t, tab, "no token field without sign-in", waitJS(`document.getElementById("token").hidden`))
			if s := value(t, tab, "status", chromedp.Evaluate[string](`document.getElementById("status").textContent`)); s != "" {
				t.Errorf("before sign-in the status says %q", s)
			}
			// Tab through the page: every stop is inside the sign-in card.
			stops := value(t, tab, "tab stops", chromedp.Evaluate[int](
				`[...document.querySelectorAll("#chat button, #chat input, #chat textarea, #chat [tabindex]")].filter((e) => e.offsetParent !== null || e.getClientRects().length > 0).length`))
			if stops != 0 {
				t.Errorf("%d focusable elements of the hidden chat screen are reachable", stops)
			}
			saveScreenshot(t, tab, "artifacts/chatpage-signin-"+vp.name+".png")
			axeCheck(t, tab, "signin-"+vp.name)

			pageSignIn(t, tab, page, "ax_"+vp.name, vp.w, vp.h)
			run(t, tab, "say something", typeLine("hello https://example.com/a"), waitJS(`!!document.querySelector("#messages .msg.own:not(.pending) a")`))
			if !jsBool(t, tab, "aria-current", `document.querySelector('#joined button[aria-current="page"]')?.textContent === "#lobby"`) {
				t.Error("the open room is not a button with aria-current=page")
			}
			saveScreenshot(t, tab, "artifacts/chatpage-room-"+vp.name+".png")
			axeCheck(t, tab, "room-"+vp.name)
		})
	}
}

// TestChatPageAccessibility fails (rather than logs) when axe-core is missing.
func TestChatPageAccessibility(t *testing.T) {
	requireAxe(t)
	newTab := newBrowser(t)
	g := chatPageGateway(t, "", nil)
	tab := newTab()
	pageSignIn(t, tab, "http://"+g.addr+"/", "reader", 1280, 800)
	bob := login(t, g.url("/chat"), "bob")
	bob.join("lobby")
	bob.send(map[string]any{"type": "say", "room": "lobby", "text": "hi reader, see https://example.org"})
	bob.send(map[string]any{"type": "pm", "to": "reader", "text": "psst"})
	run(t, tab, "a mention and a PM arrive", waitText("#messages", "see https://example.org"), waitText("#pms", "bob"))
	run(t, tab, "a failed line", typeLine("/pm nobody_here hello?"), waitJS(`!!document.querySelector("#messages .msg.failed button")`))
	axeCheck(t, tab, "room-mention-pm-failed")
	saveScreenshot(t, tab, "artifacts/chatpage-light.png")
	run(t, tab, "dark theme", prefersDark(), waitJS(`matchMedia("(prefers-color-scheme: dark)").matches`), chromedp.Click(`#joined button`))
	axeCheck(t, tab, "room-dark")
	saveScreenshot(t, tab, "artifacts/chatpage-dark.png")
}

// prefersDark makes the tab's system preference a dark theme.
func prefersDark() chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := cdp.Call(ctx, t, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
			Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: "dark"}}})
		return err
	})
}

// TestChatPageScrollsOnlyWhenAtTheBottom: a reader who scrolled up stays
// where they are as messages come (the list grows; nothing is rebuilt) and
// is told how many came below; the button takes them down.
func TestChatPageScrollsOnlyWhenAtTheBottom(t *testing.T) {
	newTab := newBrowser(t)
	g := chatPageGateway(t, "    options: {rate_limit: 1000}\n", nil)
	page := "http://" + g.addr + "/"
	for _, vp := range viewports {
		t.Run(vp.name, func(t *testing.T) {
			tab := newTab()
			reader := "reader_" + vp.name
			pageSignIn(t, tab, page, reader, vp.w, vp.h)
			bob := login(t, g.url("/chat"), "bob_"+vp.name)
			bob.join("lobby")
			for i := 0; i < 40; i++ {
				bob.send(map[string]any{"type": "say", "room": "lobby", "text": fmt.Sprintf("%s line %d", vp.name, i)})
			}
			run(t, tab, "the lines arrive", waitText("#messages", vp.name+" line 39"))
			if !jsBool(t, tab, "at the bottom", `(() => { const l = document.getElementById("messages"); return l.scrollHeight - l.scrollTop - l.clientHeight < 48; })()`) {
				t.Error("a reader at the bottom was not kept at the bottom")
			}
			run(t, tab, "scroll up and mark a line",
				chromedp.Evaluate[chromedp.Void](`(() => { const l = document.getElementById("messages"); l.scrollTop = 0;
					window.marked = [...l.querySelectorAll(".msg")].find((li) => li.textContent.includes("line 3")); })()`))
			for i := 40; i < 43; i++ {
				bob.send(map[string]any{"type": "say", "room": "lobby", "text": fmt.Sprintf("%s line %d", vp.name, i)})
			}
			run(t, tab, "told of what came below", waitText("#new-below", "3 new messages"))
			if !jsBool(t, tab, "still up", `document.getElementById("messages").scrollTop === 0 && window.marked.isConnected`) {
				t.Error("the reader was moved, or the list was rebuilt")
			}
			saveScreenshot(t, tab, "artifacts/chatpage-new-below-"+vp.name+".png")
			run(t, tab, "the button goes down",
				chromedp.Click(chromedp.ID("new-below")),
				waitJS(`document.getElementById("new-below").hidden`),
				waitJS(`(() => { const l = document.getElementById("messages"); return l.scrollHeight - l.scrollTop - l.clientHeight < 48; })()`))
		})
	}
}

// TestChatPageNeverLosesTypedText: refused commands, bad room names and
// over-long text stay in the box; a rate-limited message shows as failed
// with a retry that sends it; commands work; unknown ones are refused
// without posting anything.
func TestChatPageNeverLosesTypedText(t *testing.T) {
	newTab := newBrowser(t)
	g := chatPageGateway(t, "    options: {rate_limit: 2, rate_window: 1}\n", nil)
	tab := newTab()
	pageSignIn(t, tab, "http://"+g.addr+"/", "alice", 1280, 800)
	bob := login(t, g.url("/chat"), "bob")
	bob.join("lobby")
	run(t, tab, "bob is here", waitText("#members", "bob"))
	bob.quiet()

	box := func(t *testing.T) string {
		return value(t, tab, "the box", chromedp.Evaluate[string](`document.getElementById("text").value`))
	}
	for _, c := range []struct{ text, err string }{
		{"/frobnicate now", "unknown command /frobnicate"},
		{"/join Not A Room!", "is not a room name"},
		{strings.Repeat("é", 2001), "too long: 2001 characters"},
	} {
		run(t, tab, "refused: "+c.text[:10], typeLine(c.text))
		run(t, tab, "the error shows", waitJS(`(document.getElementById("errors").textContent + document.getElementById("join-error").textContent).includes(`+jsString(c.err)+`)`))
		if got := box(t); got != c.text {
			t.Errorf("after %q the box holds %q", c.text[:10], got)
		}
		if title := value(t, tab, "title", chromedp.Evaluate[string](`document.getElementById("title").textContent`)); title != "#lobby" {
			t.Errorf("after %q the title is %q", c.text[:10], title)
		}
	}
	bob.quiet() // nothing of that was posted

	run(t, tab, "/join games", typeLine("/join games"), waitText("#title", "#games"))
	run(t, tab, "/leave", typeLine("/leave"), waitText("#title", "#lobby"),
		waitJS(`!document.getElementById("joined").textContent.includes("games")`))

	run(t, tab, "Shift+Enter is a new line",
		chromedp.Evaluate[chromedp.Void](`document.getElementById("text").value = ""`),
		chromedp.Focus(chromedp.ID("text")),
		chromedp.SendKeys(chromedp.ID("text"), "line one"),
		chromedp.KeyEvent("\r", chromedp.KeyModifiers(chromedp.ModifierShift)),
		chromedp.SendKeys(chromedp.ID("text"), "line two\r"))
	if e := bob.expect("message"); e.str("text") != "line one\nline two" {
		t.Errorf("bob got %q", e.str("text"))
	}
	run(t, tab, "/me", typeLine("/me waves"), waitText("#messages .action", "* alice"))
	if e := bob.expect("message"); e.str("text") != "/me waves" {
		t.Errorf("bob got %q", e.str("text"))
	}

	// Past the rate limit (2 a second) a line is failed, with Retry.
	run(t, tab, "three at once",
		typeLine("burst 1"), typeLine("burst 2"), typeLine("burst 3"),
		waitJS(`!!document.querySelector("#messages .msg.failed button")`))
	failed := value(t, tab, "the failed line", chromedp.Evaluate[string](`document.querySelector("#messages .msg.failed .text").textContent`))
	saveScreenshot(t, tab, "artifacts/chatpage-failed.png")
	run(t, tab, "retry until the window passes",
		waitJS(`(() => { const b = document.querySelector("#messages .msg.failed button"); if (b) b.click();
			return !document.querySelector("#messages .msg.failed, #messages .msg.pending"); })()`))
	got := map[string]bool{}
	for len(got) < 3 {
		got[bob.expect("message").str("text")] = true
	}
	if !got[failed] {
		t.Errorf("the retried %q never reached bob: %v", failed, got)
	}

	// Links are text in an <a> with rel=noopener noreferrer; a mention is marked.
	bob.send(map[string]any{"type": "say", "room": "lobby", "text": "alice: look https://example.com/x?y=1. <b>no</b>"})
	run(t, tab, "the mention arrives", waitText("#messages .mention", "look"))
	if !jsBool(t, tab, "the link", `(() => { const a = document.querySelector("#messages .mention a");
		return a && a.href === "https://example.com/x?y=1" && a.textContent === "https://example.com/x?y=1" && a.rel === "noopener noreferrer"
		  && document.querySelectorAll("#messages b").length === 0; })()`) {
		t.Error("the link or the text around it is wrong")
	}
	if !jsBool(t, tab, "full time on hover", `/\d{4}/.test(document.querySelector("#messages .mention time").title)`) {
		t.Error("no full time on hover")
	}
}

// TestChatPagePMs: a PM counts as unread (title, badge, the phone's menu
// dot) until opened; one's own does not; PMs survive a reload.
func TestChatPagePMs(t *testing.T) {
	newTab := newBrowser(t)
	g := chatPageGateway(t, "", nil)
	page := "http://" + g.addr + "/"
	for _, vp := range viewports {
		t.Run(vp.name, func(t *testing.T) {
			tab := newTab()
			me, other := "pa_"+vp.name, "pb_"+vp.name
			pageSignIn(t, tab, page, me, vp.w, vp.h)
			bob := login(t, g.url("/chat"), other)
			bob.join("lobby")
			bob.send(map[string]any{"type": "pm", "to": me, "text": "psst"})
			bob.expect("pm")
			run(t, tab, "the PM is unread", waitJS(`document.title === "(1) Moongate chat"`), waitText("#pms", other))
			if vp.name == "phone" && !jsBool(t, tab, "menu dot", `!document.getElementById("menu-dot").hidden`) {
				t.Error("no dot on the phone's menu button")
			}
			saveScreenshot(t, tab, "artifacts/chatpage-pm-unread-"+vp.name+".png")
			if vp.name == "phone" {
				run(t, tab, "open the drawer", chromedp.Click(chromedp.ID("toggle-side")), waitJS(`!document.getElementById("backdrop").hidden`))
			}
			run(t, tab, "open the PM",
				chromedp.Click(`#pms button`),
				waitText("#title", "private: "+other),
				waitJS(`document.title === "Moongate chat"`),
				typeLine("hi back"),
				waitJS(`!!document.querySelector("#messages .msg.own:not(.pending)")`))
			if e := bob.expect("pm"); e.str("text") != "hi back" {
				t.Errorf("bob got %v", e)
			}
			run(t, tab, "back to the lobby", typeLine("/join lobby"), waitText("#title", "#lobby"))
			if n := value(t, tab, "unread", chromedp.Evaluate[string](`document.title`)); n != "Moongate chat" {
				t.Errorf("own PM counted: title %q", n)
			}
			run(t, tab, "reload",
				chromedp.Reload(),
				waitText("#status", "online as "+me),
				waitText("#pms", other))
			if vp.name == "phone" {
				run(t, tab, "open the drawer", chromedp.Click(chromedp.ID("toggle-side")), chromedp.WaitVisible(`#pms button`))
			}
			run(t, tab, "the PMs are back",
				chromedp.Click(`#pms button`),
				waitText("#messages", "psst"),
				waitText("#messages", "hi back"))
		})
	}
}

// TestChatPagePhoneDrawers: at phone size the members are a drawer behind
// a button, with a backdrop that closes it; a tap on a member opens a PM;
// tap targets are 44 px and inputs 16 px (iOS does not zoom).
func TestChatPagePhoneDrawers(t *testing.T) {
	newTab := newBrowser(t)
	g := chatPageGateway(t, "", nil)
	tab := newTab()
	pageSignIn(t, tab, "http://"+g.addr+"/", "phoney", 390, 844)
	bob := login(t, g.url("/chat"), "bob")
	bob.join("lobby")
	run(t, tab, "open the people", chromedp.Click(chromedp.ID("toggle-members")),
		chromedp.WaitVisible(`#members button`), waitJS(`!document.getElementById("backdrop").hidden`))
	saveScreenshot(t, tab, "artifacts/chatpage-phone-members.png")
	small := value(t, tab, "tap targets", chromedp.Evaluate[[]string](`[...document.querySelectorAll("button")]
		.filter((b) => b.getClientRects().length > 0).filter((b) => { const r = b.getBoundingClientRect(); return r.height < 44 || r.width < 44; })
		.map((b) => b.id || b.textContent)`))
	if len(small) > 0 {
		t.Errorf("tap targets under 44 px: %v", small)
	}
	if !jsBool(t, tab, "16px inputs", `[...document.querySelectorAll("input, textarea")].every((e) => parseFloat(getComputedStyle(e).fontSize) >= 16)`) {
		t.Error("an input is under 16 px")
	}
	run(t, tab, "a tap outside closes it", chromedp.MouseClickXY(20, 400), chromedp.WaitNotVisible(chromedp.ID("members-panel")))
	run(t, tab, "a tap on a member opens a PM", chromedp.Click(chromedp.ID("toggle-members")),
		chromedp.Click(`#members button`), waitText("#title", "private: bob"), chromedp.WaitNotVisible(chromedp.ID("members-panel")))
	if !jsBool(t, tab, "100dvh", `document.getElementById("chat").getBoundingClientRect().height === window.innerHeight`) {
		t.Error("the chat does not fill the screen")
	}
	long := strings.Repeat("long_room_name_", 2) + "xy"
	run(t, tab, "a long room name", typeLine("/join "+long), waitText("#title", "#"+long))
	if !jsBool(t, tab, "truncated", `(() => { const h = document.getElementById("title");
		return h.scrollWidth > h.clientWidth && getComputedStyle(h).textOverflow === "ellipsis" && document.documentElement.scrollWidth <= 390; })()`) {
		t.Error("a long room name is not truncated, or the page is wider than the phone")
	}
	saveScreenshot(t, tab, "artifacts/chatpage-phone-long-room.png")
}

// TestChatPageRefusedToken: a token the gateway refuses is explained on
// the sign-in form, and the page stops trying.
func TestChatPageRefusedToken(t *testing.T) {
	newTab := newBrowser(t)
	g := chatPageGateway(t, "    auth: {secret_env: TEST_CHAT_SECRET, required: true}\n", []string{"TEST_CHAT_SECRET=test-secret"})
	bad := token(t, "another-secret", "-sub", "u-1", "-ttl", "1h")
	for _, vp := range viewports {
		t.Run(vp.name, func(t *testing.T) {
			tab := newTab()
			run(t, tab, "open with a bad token",
				chromedp.EmulateViewport(vp.w, vp.h),
				chromedp.Navigate("http://"+g.addr+"/?token="+bad),
				waitText("#login-error", "refused your token"),
				chromedp.WaitVisible(chromedp.ID("token")))
			if !jsBool(t, tab, "stopped", `document.getElementById("chat").hidden && document.getElementById("banner").hidden`) {
				t.Error("the page goes on trying")
			}
			if !jsBool(t, tab, "no guests", `document.getElementById("nick").hidden && !document.getElementById("token").hidden`) {
				t.Error("a nick field is offered where guests are refused")
			}
			saveScreenshot(t, tab, "artifacts/chatpage-bad-token-"+vp.name+".png")
		})
	}
}

// TestChatPageSurvivesARestart: across a gateway restart the page shows a
// banner with a countdown and "Retry now", then a "reconnected" divider;
// messages sent after the restart show for the reader and the sender
// (message ids never repeat, and the page dedupes per conversation).
func TestChatPageSurvivesARestart(t *testing.T) {
	newTab := newBrowser(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	g := chatPageGateway(t, "", nil, "-listen", addr)
	page := "http://" + addr + "/"
	alice, bobTab := newTab(), newTab()
	pageSignIn(t, alice, page, "alice", 1280, 800)
	pageSignIn(t, bobTab, page, "bob", 390, 844)
	for i := 1; i <= 3; i++ {
		run(t, bobTab, "before", typeLine(fmt.Sprintf("before %d", i)))
	}
	run(t, alice, "alice sees them", waitText("#messages", "before 3"))

	g.stop()
	run(t, alice, "the banner counts down", waitText("#banner", "Reconnecting in"), waitJS(`!document.getElementById("retry-now").hidden`))
	saveScreenshot(t, alice, "artifacts/chatpage-offline.png")
	run(t, bobTab, "typed while offline is kept", typeLine("while away"), waitJS(`!!document.querySelector("#messages .msg.failed")`))

	chatPageGateway(t, "", nil, "-listen", addr)
	for _, tab := range []context.Context{alice, bobTab} {
		run(t, tab, "reconnect now",
			waitJS(`(() => { const b = document.getElementById("retry-now"); if (!b.hidden) b.click(); return document.getElementById("status").textContent.startsWith("online"); })()`),
			waitJS(`[...document.querySelectorAll("#messages .divider")].some((d) => d.textContent === "reconnected")`))
	}
	run(t, alice, "a restart without a database loses the history: said", waitText("#messages", "may be missing"))
	run(t, bobTab, "retry the failed line", chromedp.Click(`#messages .msg.failed button`))
	for i := 1; i <= 3; i++ {
		run(t, bobTab, "after", typeLine(fmt.Sprintf("after %d", i)))
	}
	for _, tab := range []context.Context{alice, bobTab} {
		run(t, tab, "the new messages show", waitText("#messages", "while away"), waitText("#messages", "after 3"),
			waitJS(`!document.querySelector("#messages .msg.pending, #messages .msg.failed")`))
	}
	saveScreenshot(t, alice, "artifacts/chatpage-reconnected.png")
}

// TestChatPageTypingAndKeyboard: typing in the page tells the room (once a
// window); someone else typing shows until their message arrives. The
// rooms are reached and opened with Tab and Enter alone.
func TestChatPageTypingAndKeyboard(t *testing.T) {
	newTab := newBrowser(t)
	g := chatPageGateway(t, "", nil)
	tab := newTab()
	pageSignIn(t, tab, "http://"+g.addr+"/", "alice", 1280, 800)
	bob := login(t, g.url("/chat"), "bob")
	bob.typing = true
	bob.join("lobby")
	run(t, tab, "bob is here", waitText("#members", "bob"))
	run(t, tab, "alice types", chromedp.SendKeys(chromedp.ID("text"), "hel"))
	if e := bob.expect("typing"); e.str("nick") != "alice" || e.str("room") != "lobby" {
		t.Errorf("bob got %v", e)
	}
	run(t, tab, "alice types more", chromedp.SendKeys(chromedp.ID("text"), "lo"))
	bob.quiet() // within the window: no second event
	bob.send(map[string]any{"type": "typing", "room": "lobby"})
	run(t, tab, "bob is typing", waitText("#typing", "bob is typing…"))
	saveScreenshot(t, tab, "artifacts/chatpage-typing.png")
	bob.send(map[string]any{"type": "say", "room": "lobby", "text": "done typing"})
	run(t, tab, "his message ends it", waitText("#messages", "done typing"), waitJS(`document.getElementById("typing").textContent === ""`))

	// Keyboard only: join a room from the box, then Tab to #lobby and press Enter.
	run(t, tab, "join games by keyboard",
		chromedp.Focus(chromedp.ID("room-input")),
		chromedp.SendKeys(chromedp.ID("room-input"), "games\r"),
		waitText("#title", "#games"),
		chromedp.Evaluate[chromedp.Void](`document.activeElement.blur()`)) // Tab starts from the top of the page
	found := false
	for i := 0; i < 30 && !found; i++ {
		run(t, tab, "Tab", chromedp.KeyEvent("\t"))
		found = jsBool(t, tab, "focus", `document.activeElement.tagName === "BUTTON" && document.activeElement.textContent === "#lobby" && !!document.activeElement.closest("#joined")`)
	}
	if !found {
		t.Fatal("Tab never reached the #lobby button")
	}
	run(t, tab, "Enter opens it", chromedp.KeyEvent("\r"), waitText("#title", "#lobby"),
		waitJS(`document.querySelector('#joined button[aria-current="page"]').textContent === "#lobby"`))

	// Notifications, asked for, come for a PM and a mention while the page
	// is not looked at (the browser's Notification and visibility stood in
	// for: headless Chromium shows neither).
	run(t, tab, "ask for notifications",
		chromedp.Evaluate[chromedp.Void](`window.shown = [];
			window.Notification = class { static permission = "default";
			  static requestPermission() { Notification.permission = "granted"; return Promise.resolve("granted"); }
			  constructor(title, o) { window.shown.push(title + ": " + o.body); } close() {} };
			Object.defineProperty(document, "hidden", { get: () => true }); renderNotify();`),
		chromedp.Click(chromedp.ID("notify")),
		waitJS(`document.getElementById("notify").getAttribute("aria-pressed") === "true"`))
	bob.send(map[string]any{"type": "say", "room": "lobby", "text": "nothing for her"})
	bob.send(map[string]any{"type": "say", "room": "lobby", "text": "hey alice"})
	bob.send(map[string]any{"type": "pm", "to": "alice", "text": "psst"})
	run(t, tab, "two notifications", waitJS(`window.shown.join("|") === "bob in #lobby: hey alice|bob (private): psst"`))
}

// TestChatPageRecoversWhatItMissed: after its connection drops, the page
// rejoins with since = the last id it showed and shows what was said
// meanwhile once, without claiming that anything may be missing.
func TestChatPageRecoversWhatItMissed(t *testing.T) {
	newTab := newBrowser(t)
	g := chatPageGateway(t, "", nil)
	tab := newTab()
	pageSignIn(t, tab, "http://"+g.addr+"/", "alice", 1280, 800)
	bob := login(t, g.url("/chat"), "bob")
	bob.join("lobby")
	bob.send(map[string]any{"type": "say", "room": "lobby", "text": "before the drop"})
	run(t, tab, "alice sees it", waitText("#messages", "before the drop"))
	run(t, tab, "the connection drops", chromedp.Evaluate[chromedp.Void](`chat.ws.close()`), waitText("#banner", "Reconnecting"))
	bob.send(map[string]any{"type": "say", "room": "lobby", "text": "while alice was away"})
	run(t, tab, "back, with what was missed",
		waitJS(`[...document.querySelectorAll("#messages .divider")].some((d) => d.textContent === "reconnected")`),
		waitText("#messages", "while alice was away"),
		waitText("#status", "online as alice"))
	if n := value(t, tab, "count", chromedp.Evaluate[int](`[...document.querySelectorAll("#messages .msg")].filter((li) => li.textContent.includes("was away")).length`)); n != 1 {
		t.Errorf("the missed message shows %d times", n)
	}
	if jsBool(t, tab, "no gap claimed", `document.getElementById("messages").textContent.includes("may be missing")`) {
		t.Error("the page says messages may be missing, but since matched")
	}
}

// TestChatPageOwnPMsFromAnotherTabAreNotUnread: a signed-in user's PM sent
// from one tab reaches their other tab as well; there it shows in the
// conversation but counts as nothing unread.
func TestChatPageOwnPMsFromAnotherTabAreNotUnread(t *testing.T) {
	newTab := newBrowser(t)
	g := chatPageGateway(t, "    auth: {secret_env: TEST_CHAT_SECRET, required: false}\n", []string{"TEST_CHAT_SECRET=test-secret"})
	page := "http://" + g.addr + "/?token=" + token(t, "test-secret", "-sub", "u-1", "-name", "Alice", "-ttl", "1h")
	tab1, tab2 := newTab(), newTab()
	for _, tab := range []context.Context{tab1, tab2} {
		run(t, tab, "sign in", chromedp.EmulateViewport(1280, 800), chromedp.Navigate(page), waitText("#status", "online as Alice"), waitText("#joined", "#lobby"))
	}
	bob := login(t, g.url("/chat"), "bob")
	bob.join("lobby")
	run(t, tab2, "the second tab sends a PM", typeLine("/pm bob from my other tab"), waitJS(`!!document.querySelector("#messages .msg.own:not(.pending)")`))
	if e := bob.expect("pm"); e.str("text") != "from my other tab" {
		t.Errorf("bob got %v", e)
	}
	run(t, tab1, "the first tab has it", waitText("#pms", "bob"))
	if title := value(t, tab1, "title", chromedp.Evaluate[string](`document.title + "|" + document.querySelector("#pms .badge").textContent`)); title != "Moongate chat|" {
		t.Errorf("the first tab counts its own PM as unread: %q", title)
	}
	run(t, tab1, "and shows it as own", chromedp.Click(`#pms button`), waitText("#messages .msg.own", "from my other tab"))
}

// TestChatPagePMPartnerOnline: the page shows whether a private partner
// is connected, in the PM list and the conversation's header, and follows
// it: Bob disconnecting shows as "not connected" without Alice sending
// anything (the page hears his leave in the lobby and asks about him), and
// his coming back as "connected"; Carol, who shares no room with Alice,
// stays connected meanwhile. A conversation opened with a nick nobody has
// says "not connected" at once, before any PM fails.
func TestChatPagePMPartnerOnline(t *testing.T) {
	newTab := newBrowser(t)
	g := chatPageGateway(t, "", nil)
	tab := newTab()
	pageSignIn(t, tab, "http://"+g.addr+"/", "alice", 1280, 800)
	bob := login(t, g.url("/chat"), "bob")
	bob.join("lobby")
	bob.send(map[string]any{"type": "pm", "to": "alice", "text": "psst"})
	bob.expect("pm")
	carol := login(t, g.url("/chat"), "carol")
	carol.send(map[string]any{"type": "pm", "to": "alice", "text": "hello from elsewhere"})
	carol.expect("pm")

	const pmBob = `document.querySelector('#pms button[data-room="@bob"]')`
	shows := func(state string) chromedp.Action[chromedp.Void] {
		online := map[string]string{"connected": "true", "not connected": "false"}[state]
		return waitJS(`(() => { const b = ` + pmBob + `, peer = document.getElementById("peer");
			return !!b && b.dataset.online === "` + online + `" && b.getAttribute("aria-label").includes("bob, ` + state + `")
			  && !!peer && peer.textContent === "` + state + `"
			  && document.getElementById("members").textContent.includes("(` + state + `)"); })()`)
	}
	run(t, tab, "the PM arrives and is opened", waitText("#pms", "bob"), chromedp.Click(`#pms button[data-room="@bob"]`),
		waitText("#title", "private: bob"), shows("connected"))
	run(t, tab, "alice answers", typeLine("hi bob"), waitJS(`!!document.querySelector("#messages .msg.own:not(.pending)")`))
	if e := bob.expect("pm"); e.str("text") != "hi bob" {
		t.Errorf("bob got %v", e)
	}
	run(t, tab, "carol is connected", waitJS(`document.querySelector('#pms button[data-room="@carol"]')?.dataset.online === "true"`))
	saveScreenshot(t, tab, "artifacts/chatpage-pm-connected.png")

	// What the page sends from now on: it asks about bob alone when it
	// hears him leave (every 15 s it asks about all its partners too).
	run(t, tab, "watch what the page sends", chromedp.Evaluate[chromedp.Void](`(() => { window.sent = [];
		const ws = chat.ws, send = ws.send.bind(ws); ws.send = (d) => { window.sent.push(d); return send(d); }; })()`))
	bob.conn.CloseNow()
	run(t, tab, "bob shows as not connected", shows("not connected"))
	if !jsBool(t, tab, "asked about bob", `window.sent.includes('{"type":"online","nicks":["bob"]}')`) {
		t.Errorf("the page did not ask about bob when he left; it sent %v",
			value(t, tab, "sent", chromedp.Evaluate[[]string](`window.sent`)))
	}
	if !jsBool(t, tab, "carol still connected", `document.querySelector('#pms button[data-room="@carol"]').dataset.online === "true"`) {
		t.Error("carol no longer shows as connected")
	}
	if !jsBool(t, tab, "nothing sent", `!document.querySelector("#messages .msg.failed, #messages .msg.pending")`) {
		t.Error("a line of alice's is pending or failed: she sent something")
	}
	saveScreenshot(t, tab, "artifacts/chatpage-pm-not-connected.png")
	axeCheck(t, tab, "pm-not-connected")

	back := login(t, g.url("/chat"), "bob")
	back.join("lobby")
	run(t, tab, "bob shows as connected again", shows("connected"))
	saveScreenshot(t, tab, "artifacts/chatpage-pm-back.png")

	run(t, tab, "on a phone the header still says it", chromedp.EmulateViewport(390, 844), shows("connected"),
		waitJS(`(() => { const r = document.getElementById("peer").getBoundingClientRect(); return r.width > 0 && r.right <= 390; })()`))
	saveScreenshot(t, tab, "artifacts/chatpage-pm-connected-phone.png")
	run(t, tab, "desktop again", chromedp.EmulateViewport(1280, 800))

	run(t, tab, "a conversation with nobody", typeLine("/pm ghost"), waitText("#title", "private: ghost"),
		waitJS(`document.getElementById("peer")?.textContent === "not connected" &&
			document.querySelector('#pms button[data-room="@ghost"]').dataset.online === "false"`))
}

// TestChatPagePMNickCase: nicks are one without regard to case. Alice
// types "/pm BOB hi" to bob: the page keeps one conversation, which shows
// "bob" (the server's spelling) once the server answers; that answer
// settles her line (no longer "sending…"), and bob's reply, addressed to
// "ALICE", lands in the same conversation. After a reload the conversation
// is still one, an entry kept under another case (as an earlier page kept
// them) merged into it in time order.
func TestChatPagePMNickCase(t *testing.T) {
	newTab := newBrowser(t)
	g := chatPageGateway(t, "", nil)
	tab := newTab()
	pageSignIn(t, tab, "http://"+g.addr+"/", "alice", 1280, 800)
	bob := login(t, g.url("/chat"), "bob")

	// pms lists the PM buttons as "data-room=label".
	pms := func() []string {
		return value(t, tab, "the PM list", chromedp.Evaluate[[]string](
			`[...document.querySelectorAll("#pms button")].map((b) => b.dataset.room + "=" + b.textContent)`))
	}
	run(t, tab, "alice writes to BOB", typeLine("/pm BOB hi"), waitText("#title", "private: BOB"))
	if e := bob.expect("pm"); e.str("text") != "hi" || e.str("from") != "alice" || e.str("to") != "bob" {
		t.Fatalf("bob got %v", e)
	}
	// The echo names him "bob": once the page shows that spelling, it has
	// handled the echo (with or without merging the conversations).
	run(t, tab, "the server's answer arrives", waitText("#pms", "bob"))
	if got := pms(); len(got) != 1 || got[0] != "@bob=bob" {
		t.Errorf("the PM list is %q, want one conversation shown as bob", got)
	}
	if title := value(t, tab, "title", chromedp.Evaluate[string](`document.getElementById("title").textContent`)); !strings.HasPrefix(title, "private: bob") {
		t.Errorf("the title is %q, want the server's spelling", title)
	}
	if !jsBool(t, tab, "accepted", `(() => { const own = [...document.querySelectorAll("#messages .msg.own")];
		return own.length === 1 && own[0].querySelector(".text").textContent === "hi" && !document.querySelector("#messages .msg.pending, #messages .msg.failed"); })()`) {
		t.Errorf("alice's line is not shown once as accepted: %q",
			value(t, tab, "lines", chromedp.Evaluate[string](`document.getElementById("messages").textContent`)))
	}
	if people := value(t, tab, "people", chromedp.Evaluate[string](`document.getElementById("members").textContent`)); !strings.HasPrefix(people, "alicebob") || strings.Contains(people, "BOB") {
		t.Errorf("the people panel says %q", people)
	}

	bob.send(map[string]any{"type": "pm", "to": "ALICE", "text": "hello alice"})
	run(t, tab, "bob's reply arrives",
		waitJS(`[...chat.convos.values()].some((c) => c.lines.some((l) => l.text === "hello alice"))`))
	if !jsBool(t, tab, "in the open conversation", `document.getElementById("messages").textContent.includes("hello alice")`) {
		t.Error("bob's reply is not in the open conversation")
	}
	if got := pms(); len(got) != 1 || got[0] != "@bob=bob" {
		t.Errorf("after bob's reply the PM list is %q", got)
	}
	if title := value(t, tab, "tab title", chromedp.Evaluate[string](`document.title`)); title != "Moongate chat" {
		t.Errorf("the reply in the open conversation counts as unread: %q", title)
	}
	saveScreenshot(t, tab, "artifacts/chatpage-pm-nick-case.png")

	// What the tab kept, plus an entry of the same partner under another
	// case, older than both lines.
	run(t, tab, "an entry kept as @BOB", chromedp.Evaluate[chromedp.Void](`(() => {
		const key = "moongate-chat-pms:alice", pms = JSON.parse(sessionStorage.getItem(key));
		pms["@BOB"] = [{ type: "pm", from: "alice", to: "BOB", text: "kept under another case", ts: Date.now() - 60000, id: "older-1" }];
		sessionStorage.setItem(key, JSON.stringify(pms)); })()`))
	run(t, tab, "reload: the conversation is open again", chromedp.Reload(), waitText("#status", "online as alice"),
		waitText("#pms", "bob"), waitText("#title", "private: bob"), waitText("#messages", "hello alice"))
	if got := pms(); len(got) != 1 || got[0] != "@bob=bob" {
		t.Errorf("after a reload the PM list is %q", got)
	}
	texts := value(t, tab, "lines after the reload", chromedp.Evaluate[[]string](`[...document.querySelectorAll("#messages .msg .text")].map((e) => e.textContent)`))
	if strings.Join(texts, "|") != "kept under another case|hi|hello alice" {
		t.Errorf("after a reload the conversation holds %q", texts)
	}
}
