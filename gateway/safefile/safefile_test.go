package safefile

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestReadRefusesWhatIsNotARegularFile(t *testing.T) {
	dir := t.TempDir()
	regular := filepath.Join(dir, "a.lua")
	if err := os.WriteFile(regular, []byte("return {}"), 0o644); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	link := func(name, target string) string {
		p := filepath.Join(dir, name)
		if err := os.Symlink(target, p); err != nil {
			t.Fatal(err)
		}
		return p
	}
	cases := []struct {
		path string
		want error
	}{
		{link("zero", "/dev/zero"), ErrNotRegular},
		{link("to-fifo", fifo), ErrNotRegular},
		{fifo, ErrNotRegular},
		{dir, ErrNotRegular},
		{filepath.Join(dir, "missing"), os.ErrNotExist},
	}
	for _, c := range cases {
		done := make(chan error, 1)
		go func() { _, err := Read(c.path, 1<<20); done <- err }()
		select {
		case err := <-done:
			if !errors.Is(err, c.want) {
				t.Errorf("%s: %v, want %v", c.path, err, c.want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: Read blocked", c.path)
		}
	}
	got, err := Read(link("ok", regular), 1<<20)
	if err != nil || string(got) != "return {}" {
		t.Errorf("a symlink to a regular file: %q, %v", got, err)
	}
}

func TestReadRefusesAFileOverTheLimit(t *testing.T) {
	p := filepath.Join(t.TempDir(), "big.lua")
	if err := os.WriteFile(p, []byte(strings.Repeat("x", 101)), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Read(p, 100); !errors.Is(err, ErrTooLarge) {
		t.Errorf("101 bytes with a limit of 100: %v", err)
	}
	if got, err := Read(p, 101); err != nil || len(got) != 101 {
		t.Errorf("101 bytes with a limit of 101: %d bytes, %v", len(got), err)
	}
}
