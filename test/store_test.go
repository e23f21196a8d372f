package test

import "testing"

// TestOwnedKeysGoWithTheirClient: a key added with {owner = client} is
// removed when that client disconnects, from whichever state, so another
// client can take it.
func TestOwnedKeysGoWithTheirClient(t *testing.T) {
	g := startGateway(t, map[string]string{
		"s.lua": `return { message = function(c, name)
  c:send(tostring(store.add("nick:" .. name, c.id, { owner = c })))
end }`,
		"config.yaml": "endpoints:\n  - path: /s\n    script: s.lua\n    states: 2\n",
	})
	a, b := dial(t, g.url("/s")), dial(t, g.url("/s"))
	if got := ask(t, a, "ann"); got != "true" {
		t.Fatalf("a holds ann: %q", got)
	}
	if got := ask(t, b, "ann"); got != "false" {
		t.Fatalf("b while a holds ann: %q", got)
	}
	a.Close(1000, "bye")
	eventually(t, "ann to be free once a is gone", func() bool { return ask(t, b, "ann") == "true" })
}
