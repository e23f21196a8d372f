package gateway

import (
	"net/http"
	"os"
	"path"
	"strings"
)

// staticDir serves the regular files of one folder: a path that names a
// dotfile (or goes through a dot-folder), a directory without an
// index.html, anything but a regular file, or a symbolic link that leads
// outside the folder answers 404. Directories are never listed.
type staticDir struct {
	prefix string // URL prefix, ending in "/"
	dir    string // the folder
}

// ServeHTTP serves the file r names under the prefix.
func (s staticDir) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	name, ok := s.fileName(r.URL.Path)
	if !ok {
		http.NotFound(w, r)
		return
	}
	f, info, err := s.open(name)
	if err == nil && info.IsDir() {
		f.Close()
		if !strings.HasSuffix(r.URL.Path, "/") {
			redirectSlash(w, r)
			return
		}
		f, info, err = s.open(path.Join(name, "index.html"))
		if err == nil && info.IsDir() {
			f.Close()
			err = os.ErrNotExist
		}
	}
	if err != nil {
		http.NotFound(w, r)
		return
	}
	defer f.Close()
	http.ServeContent(w, r, info.Name(), info.ModTime(), f)
}

// fileName turns a URL path under the prefix into a slash-separated name
// relative to the folder; ok is false for a dotfile or a path outside the
// prefix.
func (s staticDir) fileName(urlPath string) (name string, ok bool) {
	rest, ok := strings.CutPrefix(path.Clean("/"+urlPath)+"/", s.prefix)
	if !ok {
		return "", false
	}
	name = strings.Trim(rest, "/")
	if name == "" {
		return ".", true
	}
	for _, seg := range strings.Split(name, "/") {
		if strings.HasPrefix(seg, ".") {
			return "", false
		}
	}
	return name, true
}

// open opens name inside the folder, never following a link out of it,
// and returns it only if it is a regular file or a directory.
func (s staticDir) open(name string) (*os.File, os.FileInfo, error) {
	f, err := os.OpenInRoot(s.dir, name)
	if err != nil {
		return nil, nil, err
	}
	info, err := f.Stat()
	if err == nil && !info.Mode().IsRegular() && !info.IsDir() {
		err = os.ErrNotExist
	}
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	return f, info, nil
}

// redirectSlash answers a path without its trailing slash with a
// permanent redirect to the path with it, keeping the query.
func redirectSlash(w http.ResponseWriter, r *http.Request) {
	target := r.URL.Path + "/"
	if r.URL.RawQuery != "" {
		target += "?" + r.URL.RawQuery
	}
	http.Redirect(w, r, target, http.StatusMovedPermanently)
}
