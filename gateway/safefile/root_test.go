package safefile

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

func TestReadInStaysInsideTheFolder(t *testing.T) {
	outside := t.TempDir()
	secret := filepath.Join(outside, "secret.lua")
	if err := os.WriteFile(secret, []byte("return 'secret'"), 0o644); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for name, content := range map[string]string{"a.lua": "return 1", "lib/b.lua": "return 2", "lib/real.lua": "return 3"} {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for link, target := range map[string]string{
		"out.lua":       secret,
		"lib/rel.lua":   "../../" + filepath.Base(outside) + "/secret.lua",
		"lib/in.lua":    "real.lua",
		"outdir":        outside,
		"lib/fifo.lua":  filepath.Join(dir, "fifo"),
		"lib/zero.lua":  "/dev/zero",
		"lib/up.lua":    "../a.lua",
		"lib/gone.lua":  filepath.Join(outside, "missing.lua"),
		"lib/same.lua":  filepath.Join(dir, "a.lua"),
		"lib/outd":      outside,
		"lib/self":      ".",
		"lib/dots.lua":  "../lib/../a.lua",
		"lib/abs2.lua":  filepath.Join(dir, "lib", "b.lua"),
		"lib/other.lua": filepath.Join(outside, "..", filepath.Base(outside), "secret.lua"),
	} {
		if err := os.Symlink(target, filepath.Join(dir, link)); err != nil {
			t.Fatal(err)
		}
	}
	if err := syscall.Mkfifo(filepath.Join(dir, "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		want string // the content, or "" when an error is wanted
		err  error
	}{
		{"a.lua", "return 1", nil},
		{"lib/b.lua", "return 2", nil},
		{"lib/in.lua", "return 3", nil},
		{"lib/up.lua", "return 1", nil},
		{"lib/dots.lua", "return 1", nil},
		{"lib/self/b.lua", "return 2", nil},
		{"../" + filepath.Base(dir) + "/a.lua", "", ErrOutside},
		{"/etc/passwd", "", ErrOutside},
		{secret, "", ErrOutside},
		{"out.lua", "", ErrOutside},
		{"lib/rel.lua", "", ErrOutside},
		{"outdir/secret.lua", "", ErrOutside},
		{"lib/outd/secret.lua", "", ErrOutside},
		{"lib/other.lua", "", ErrOutside},
		{"fifo", "", ErrNotRegular},
		{"lib/fifo.lua", "", ErrOutside}, // absolute
		{"lib/same.lua", "", ErrOutside},
		{"lib/abs2.lua", "", ErrOutside},
		{"lib/gone.lua", "", ErrOutside},
		{"lib/missing.lua", "", os.ErrNotExist},
	}
	for _, c := range cases {
		got, err := ReadIn(dir, c.name, 1<<20)
		if c.err == nil {
			if err != nil || string(got) != c.want {
				t.Errorf("ReadIn(%q) = %q, %v; want %q", c.name, got, err, c.want)
			}
			continue
		}
		if !errors.Is(err, c.err) {
			t.Errorf("ReadIn(%q) = %q, %v; want an error wrapping %v", c.name, got, err, c.err)
		}
	}
	// A symlink that leads out is refused whatever it points at: a device
	// or a FIFO outside is never opened.
	if _, err := ReadIn(dir, "lib/zero.lua", 1<<20); err == nil {
		t.Error("a symlink to /dev/zero was read")
	}
}
