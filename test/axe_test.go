package test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
)

// axePath is axe-core's browser bundle, a test-only npm dependency
// (test/browser/package.json) that `make test` installs
// (.ci/ensure-browser-deps).
const axePath = "browser/node_modules/axe-core/axe.min.js"

// axeSource returns axe-core's source, or "" when it is not installed
// (after saying so; under CI=true that fails the test).
func axeSource(t *testing.T) string {
	t.Helper()
	src, err := os.ReadFile(axePath)
	if err == nil {
		return string(src)
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("axe-core is missing (%v): `make test` installs it (.ci/ensure-browser-deps)", err)
	}
	t.Logf("axe-core is missing (%v): run `make browser-deps` (needs npm); skipping the accessibility check", err)
	return ""
}

// requireAxe skips t when axe-core is not installed (fails under CI=true).
func requireAxe(t *testing.T) {
	t.Helper()
	if axeSource(t) == "" {
		t.Skip("axe-core is not installed")
	}
}

// axeViolation is one rule axe-core found broken, with the elements that break it.
type axeViolation struct {
	ID     string `json:"id"`
	Impact string `json:"impact"`
	Help   string `json:"help"`
	Nodes  []struct {
		Target  []any  `json:"target"`
		Summary string `json:"failureSummary"`
	} `json:"nodes"`
}

// axeCheck runs axe-core (WCAG 2 A and AA rules and best practices) on
// the page open in tab and fails t for every serious or critical
// violation; minor and moderate ones are logged. The full list is kept
// as artifacts/axe-<name>.json. Without axe-core installed it logs that
// and returns (fails under CI=true).
func axeCheck(t *testing.T, tab context.Context, name string) {
	t.Helper()
	src := axeSource(t)
	if src == "" {
		return
	}
	if !value(t, tab, "injecting axe-core", chromedp.Evaluate[bool](`typeof window.axe === "object"`)) {
		run(t, tab, "injecting axe-core", chromedp.Evaluate[chromedp.Void](src+"\n;undefined"))
	}
	out := value(t, tab, "running axe-core", chromedp.Evaluate[string](
		`axe.run(document, {resultTypes: ["violations"], runOnly: {type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"]}})
		   .then((r) => JSON.stringify(r.violations))`, chromedp.EvalAwaitPromise))
	var violations []axeViolation
	if err := json.Unmarshal([]byte(out), &violations); err != nil {
		t.Fatalf("axe-core's answer: %v", err)
	}
	path := filepath.Join("artifacts", "axe-"+name+".json")
	os.MkdirAll(filepath.Dir(path), 0o755)
	if err := os.WriteFile(path, []byte(out), 0o644); err != nil {
		t.Error(err)
	}
	for _, v := range violations {
		var where []string
		for _, n := range v.Nodes {
			where = append(where, fmt.Sprint(n.Target)+": "+strings.ReplaceAll(n.Summary, "\n", " "))
		}
		msg := fmt.Sprintf("%s: %s (%s, %s)\n    %s", name, v.Help, v.ID, v.Impact, strings.Join(where, "\n    "))
		if v.Impact == "serious" || v.Impact == "critical" {
			t.Error(msg)
		} else {
			t.Log(msg)
		}
	}
}
