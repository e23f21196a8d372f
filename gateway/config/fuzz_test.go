package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzParse feeds arbitrary YAML to the loader: it must never panic, and
// a refusal must be Errors, each naming the file.
func FuzzParse(f *testing.F) {
	for _, seed := range []string{
		"endpoints: [{path: /echo, script: echo.lua}]\n",
		"listen: 127.0.0.1:1\nendpoints:\n  - path: /x\n    script: echo.lua\n    states: auto\n    options: {a: [1, {b: c}]}\n",
		"endpoints:\n  - path: /x\n    script: echo.lua\n    max_message_bytes: 1.5KiB\n    ping_interval: 1h\n",
		"static: [{prefix: /, dir: .}]\n", "endpoints: &a [*a]\n", "{", "- - -", "endpoints: [[]]\n", "? a\n: b\n",
	} {
		f.Add(seed)
	}
	dir := f.TempDir()
	os.WriteFile(filepath.Join(dir, "echo.lua"), []byte("return {}"), 0o644)
	file := filepath.Join(dir, "c.yaml")
	f.Fuzz(func(t *testing.T, yaml string) {
		cfg, err := Parse(file, []byte(yaml))
		if err == nil {
			if len(cfg.Endpoints) == 0 {
				t.Fatal("accepted a config without endpoints")
			}
			return
		}
		var errs Errors
		if !errors.As(err, &errs) || len(errs) == 0 {
			t.Fatalf("refusal of type %T: %v", err, err)
		}
		for _, e := range errs {
			if !strings.HasPrefix(e.Error(), file) {
				t.Fatalf("error without the file name: %q", e)
			}
		}
	})
}
