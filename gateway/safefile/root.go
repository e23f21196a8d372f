package safefile

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// ErrOutside is returned for a name that leads outside the folder it is
// read in: an absolute path, a ".." that climbs out, or a symlink whose
// target is outside.
var ErrOutside = errors.New("outside the folder")

// ReadIn is Read for a file named relative to dir that must stay inside
// it: the name may not be absolute or climb out with "..", and a symlink
// on the way (the file or a folder above it) is followed only while it
// stays inside dir (os.Root enforces that at each step, so a link swapped
// in during the read cannot lead out either); an absolute symlink is
// refused even when it points inside. Errors wrap ErrOutside,
// ErrNotRegular, ErrTooLarge or the os error (such as os.ErrNotExist).
func ReadIn(dir, name string, limit int64) ([]byte, error) {
	path := filepath.Join(dir, name)
	if filepath.IsAbs(name) || !filepath.IsLocal(name) {
		return nil, fmt.Errorf("%s: %w", path, ErrOutside)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, err
	}
	defer root.Close()
	f, err := root.OpenFile(name, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		// os.Root does not export its "escapes" error; a symlink that
		// leads out, or is absolute (os.Root follows only relative ones),
		// is told apart from a missing file here, for the message.
		if escapes(dir, name) || strings.Contains(err.Error(), "escapes") {
			return nil, fmt.Errorf("%s: %w (a symlink on the way is absolute or leads out of it)", path, ErrOutside)
		}
		return nil, err
	}
	return readOpened(f, path, limit)
}

// escapes reports whether name, under dir, resolves to a path outside dir:
// what made os.Root refuse it, told apart from a missing file for the
// error message. os.Root has already refused the open; this only names why.
func escapes(dir, name string) bool {
	realDir, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return false
	}
	real, err := filepath.EvalSymlinks(filepath.Join(dir, name))
	if err != nil {
		return false
	}
	rel, err := filepath.Rel(realDir, real)
	return err != nil || !filepath.IsLocal(rel)
}
