package luatest_test

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/moongate/moongate/gateway/config"
	"github.com/moongate/moongate/scripting/luatest"
)

// docBlocks returns the files docs/testing.md shows (a fenced block after
// <!-- file: NAME -->) and the outputs it promises (a fenced block after
// <!-- output: COMMAND -->, its first line the command).
func docBlocks(t *testing.T) (files map[string]string, outputs map[string]string) {
	t.Helper()
	raw, err := os.ReadFile("../../docs/testing.md")
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile("(?s)<!-- (file|output): ([^>]+?) -->\n```[a-z]*\n(.*?)```")
	files, outputs = map[string]string{}, map[string]string{}
	for _, m := range re.FindAllStringSubmatch(string(raw), -1) {
		if m[1] == "file" {
			files[m[2]] = m[3]
		} else {
			outputs[m[2]] = m[3]
		}
	}
	if len(files) < 4 || len(outputs) < 2 {
		t.Fatalf("docs/testing.md: found %d files and %d outputs", len(files), len(outputs))
	}
	return files, outputs
}

var durations = regexp.MustCompile(`\d+\.\d+s`)

// TestDocExample runs docs/testing.md's example and compares the output
// with what the page shows.
func TestDocExample(t *testing.T) {
	files, outputs := docBlocks(t)
	dir := t.TempDir()
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Chdir(dir)
	for command, want := range outputs {
		args := strings.Fields(command)[1:] // moongate test -config F [-v] PATH
		var out bytes.Buffer
		o := luatest.Options{Out: &out}
		var paths []string
		cfgPath := ""
		for i := 1; i < len(args); i++ {
			switch args[i] {
			case "-config":
				i++
				cfgPath = args[i]
			case "-v":
				o.Verbose = true
			default:
				paths = append(paths, args[i])
			}
		}
		cfg, err := config.Load(cfgPath)
		if err != nil {
			t.Fatal(err)
		}
		found, err := luatest.Find(cfg, paths)
		if err != nil {
			t.Fatal(err)
		}
		passed := luatest.Run(found, o)
		want = strings.SplitN(want, "\n", 2)[1] // the $ command line
		got := durations.ReplaceAllString(out.String(), "0.00s")
		if got != durations.ReplaceAllString(want, "0.00s") {
			t.Errorf("%s:\n%s\nthe doc shows:\n%s", command, got, want)
		}
		if passed != strings.Contains(want, "\nok  ") {
			t.Errorf("%s: passed = %v", command, passed)
		}
	}
}
