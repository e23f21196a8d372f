package config

import (
	"fmt"
	"math"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

const (
	msec = time.Millisecond
	sec  = time.Second
)

// scalar returns a scalar node's value and whether it is one of tags.
func (d *decoder) scalar(n *yaml.Node, field, want string, tags ...string) (string, bool) {
	if n.Kind == yaml.ScalarNode {
		for _, t := range tags {
			if n.Tag == t {
				return n.Value, true
			}
		}
	}
	d.fail(n, field, "must be %s, got %s", want, describe(n))
	return "", false
}

// describe says what a node is, in a user's words.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	}
	switch n.Tag {
	case "!!null":
		return "nothing"
	case "!!str":
		return strconv.Quote(n.Value)
	}
	return n.Value
}

func (d *decoder) str(n *yaml.Node, field, want string) string {
	s, _ := d.scalar(n, field, want, "!!str")
	return s
}

func (d *decoder) boolean(n *yaml.Node, field string) bool {
	s, _ := d.scalar(n, field, "true or false", "!!bool")
	return s == "true"
}

func (d *decoder) hostPort(n *yaml.Node, field string) string {
	s, ok := d.scalar(n, field, `an address like "127.0.0.1:8080"`, "!!str")
	if !ok {
		return ""
	}
	if _, _, err := net.SplitHostPort(s); err != nil {
		d.fail(n, field, `must be an address like "127.0.0.1:8080", got %q`, s)
	}
	return s
}

func (d *decoder) urlPath(n *yaml.Node, field string) string {
	s, ok := d.scalar(n, field, `a URL path like "/echo"`, "!!str")
	if ok && !strings.HasPrefix(s, "/") {
		d.fail(n, field, "must start with \"/\", got %q", s)
	}
	return s
}

// existingPath resolves a path against the config's folder and checks that it is
// a regular file (or a folder when dir is set).
func (d *decoder) existingPath(n *yaml.Node, field string, dir bool) string {
	s, ok := d.scalar(n, field, "a path", "!!str")
	if !ok || s == "" {
		if ok {
			d.fail(n, field, "must not be empty")
		}
		return ""
	}
	p := s
	if !filepath.IsAbs(p) {
		p = filepath.Join(d.dir, p)
	}
	p = filepath.Clean(p)
	info, err := os.Stat(p)
	switch {
	case os.IsNotExist(err):
		d.fail(n, field, "%s: no such file or folder", p)
	case err != nil:
		d.fail(n, field, "%v", err)
	case dir && !info.IsDir():
		d.fail(n, field, "%s: not a folder", p)
	case !dir && !info.Mode().IsRegular():
		d.fail(n, field, "%s: not a regular file", p)
	}
	return p
}

func (d *decoder) integer(n *yaml.Node, field string, lo, hi int64) int64 {
	s, ok := d.scalar(n, field, "a whole number", "!!int")
	if !ok {
		return 0
	}
	v, err := strconv.ParseInt(s, 0, 64)
	if err != nil || v < lo || v > hi {
		d.fail(n, field, "must be between %d and %d, got %s", lo, hi, s)
	}
	return v
}

func (d *decoder) states(n *yaml.Node, field string) int {
	if n.Kind == yaml.ScalarNode && n.Tag == "!!str" && n.Value == "auto" {
		return AutoStates()
	}
	if n.Kind != yaml.ScalarNode || n.Tag != "!!int" {
		d.fail(n, field, `must be a whole number or "auto", got %s`, describe(n))
		return 0
	}
	return int(d.integer(n, field, 1, 1024))
}

func (d *decoder) duration(n *yaml.Node, field string, lo, hi time.Duration) time.Duration {
	if n.Kind == yaml.ScalarNode && (n.Tag == "!!int" || n.Tag == "!!float") {
		d.fail(n, field, `must be a duration with a unit, like "%ss", got %s`, n.Value, n.Value)
		return 0
	}
	s, ok := d.scalar(n, field, `a duration like "30s" or "250ms"`, "!!str")
	if !ok {
		return 0
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		d.fail(n, field, `must be a duration like "30s" or "250ms", got %q`, s)
		return 0
	}
	if v < lo || v > hi {
		d.fail(n, field, "must be between %s and %s, got %s", lo, hi, s)
	}
	return v
}

// sizeUnits are the suffixes a size may carry.
var sizeUnits = []struct {
	suffix string
	factor int64
}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"KB", 1000}, {"MB", 1000_000}, {"GB", 1000_000_000}, {"B", 1}}

func (d *decoder) size(n *yaml.Node, field string, lo, hi int64) int64 {
	if n.Kind == yaml.ScalarNode && n.Tag == "!!int" {
		return d.integer(n, field, lo, hi)
	}
	s, ok := d.scalar(n, field, `a size like 65536, "64KiB" or "1MiB"`, "!!str")
	if !ok {
		return 0
	}
	for _, u := range sizeUnits {
		if num, found := strings.CutSuffix(s, u.suffix); found {
			v, err := strconv.ParseFloat(strings.TrimSpace(num), 64)
			bytes := v * float64(u.factor)
			if err != nil || bytes < float64(lo) || bytes > float64(hi) || bytes != math.Trunc(bytes) {
				break
			}
			return int64(bytes)
		}
	}
	d.fail(n, field, `must be a size from %d bytes to 1GiB, like 65536, "64KiB" or "1MiB", got %q`, lo, s)
	return 0
}

func (d *decoder) onFull(n *yaml.Node, field string) OnFull {
	s, ok := d.scalar(n, field, `"close" or "drop"`, "!!str")
	if ok && s != string(OnFullClose) && s != string(OnFullDrop) {
		d.fail(n, field, `must be "close" or "drop", got %q`, s)
	}
	return OnFull(s)
}

func (d *decoder) strings(n *yaml.Node, field string) []string {
	if n.Kind != yaml.SequenceNode {
		d.fail(n, field, "must be a list of strings, got %s", describe(n))
		return nil
	}
	out := make([]string, 0, len(n.Content))
	for i, item := range n.Content {
		out = append(out, d.str(item, fmt.Sprintf("%s[%d]", field, i), "a string"))
	}
	return out
}

func (d *decoder) options(n *yaml.Node, field string) map[string]any {
	if n.Kind != yaml.MappingNode {
		d.fail(n, field, "must be a mapping, got %s", describe(n))
		return map[string]any{}
	}
	var m map[string]any
	if err := n.Decode(&m); err != nil {
		d.fail(n, field, "%v", err)
	}
	if m == nil {
		m = map[string]any{}
	}
	return m
}
