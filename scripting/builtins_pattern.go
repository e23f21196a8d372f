package scripting

import (
	"context"
	"fmt"

	"github.com/moongate/moongate/scripting/luaval"
)

// A Lua 5.1 pattern matcher (the "Patterns" section of the Lua 5.1
// reference manual) that counts its steps and stops when the handler's
// context ends. gopher-lua's own matcher runs in Go without looking at the
// context, so a pattern that backtracks badly could hold a state for
// minutes.

const (
	maxCaptures     = 32  // LUA_MAXCAPTURES
	maxMatchDepth   = 200 // nested matching calls; deeper is "pattern too complex"
	capUnfinished   = -1  // a capture whose ')' was not reached yet
	capPosition     = -2  // a position capture, ()
	patternEscape   = '%'
	patternSpecials = "^$*+?.([%-"
)

// patternError is a malformed pattern or an interrupted match. The matcher
// panics with it and match recovers it, so the recursive functions need not
// pass it up by hand.
type patternError struct{ msg string }

// capture is one capture of a match: where it starts in the subject and
// its length, or capUnfinished or capPosition.
type capture struct {
	init, len int
}

// matcher matches one pattern against one subject.
type matcher struct {
	src, pat string
	level    int // captures in use
	capture  [maxCaptures]capture
	depth    int // nested match calls
	stop     luaval.Stopper
}

// newMatcher returns a matcher of pat in src that stops with ctx.
func newMatcher(ctx context.Context, src, pat string) *matcher {
	return &matcher{src: src, pat: pat, stop: luaval.NewStopper(ctx)}
}

// fail aborts the match with an error.
func (m *matcher) fail(format string, args ...any) {
	panic(patternError{fmt.Sprintf(format, args...)})
}

// tick counts a step and aborts the match once the context has ended.
func (m *matcher) tick() {
	if err := m.stop.Step(); err != nil {
		m.fail("pattern matching interrupted: %v", err)
	}
}

// p returns the pattern byte at i, or 0 past its end (as in C, where the
// terminating zero ends the pattern).
func (m *matcher) p(i int) byte {
	if i < len(m.pat) {
		return m.pat[i]
	}
	return 0
}

// at tries to match the pattern from pi at subject position s, with no
// captures yet. It returns where the match ends, or -1.
func (m *matcher) at(s, pi int) (end int, err error) {
	m.level, m.depth = 0, 0
	defer func() {
		if r := recover(); r != nil {
			pe, ok := r.(patternError)
			if !ok {
				panic(r)
			}
			end, err = -1, fmt.Errorf("%s", pe.msg)
		}
	}()
	return m.match(s, pi), nil
}

// match is Lua 5.1's match(): it returns the end of a match of the pattern
// from pi at subject position s, or -1.
func (m *matcher) match(s, pi int) int {
	m.depth++
	if m.depth > maxMatchDepth {
		m.fail("pattern too complex")
	}
	defer func() { m.depth-- }()
	for {
		m.tick()
		switch m.p(pi) {
		case '(':
			if m.p(pi+1) == ')' {
				return m.startCapture(s, pi+2, capPosition)
			}
			return m.startCapture(s, pi+1, capUnfinished)
		case ')':
			return m.endCapture(s, pi+1)
		case 0:
			return s
		case '$':
			if m.p(pi+1) == 0 {
				if s == len(m.src) {
					return s
				}
				return -1
			}
		case patternEscape:
			switch next := m.p(pi + 1); {
			case next == 'b':
				if s = m.matchBalance(s, pi+2); s == -1 {
					return -1
				}
				pi += 4
				continue
			case next == 'f':
				var ok bool
				if pi, ok = m.frontier(s, pi+2); !ok {
					return -1
				}
				continue
			case isDigit(next):
				if s = m.matchCapture(s, next); s == -1 {
					return -1
				}
				pi += 2
				continue
			}
		}
		// A single-character class, perhaps followed by a repetition.
		ep := m.classEnd(pi)
		matched := s < len(m.src) && m.singleMatch(m.src[s], pi, ep)
		switch m.p(ep) {
		case '?':
			if matched {
				if res := m.match(s+1, ep+1); res != -1 {
					return res
				}
			}
			pi = ep + 1
		case '*':
			return m.maxExpand(s, pi, ep)
		case '+':
			if !matched {
				return -1
			}
			return m.maxExpand(s+1, pi, ep)
		case '-':
			return m.minExpand(s, pi, ep)
		default:
			if !matched {
				return -1
			}
			s++
			pi = ep
		}
	}
}

// frontier handles %f[set] (pi on the '['): it returns where the pattern
// goes on and whether the frontier is at s.
func (m *matcher) frontier(s, pi int) (int, bool) {
	if m.p(pi) != '[' {
		m.fail("missing '[' after '%%f' in pattern")
	}
	ep := m.classEnd(pi)
	var prev, cur byte
	if s > 0 {
		prev = m.src[s-1]
	}
	if s < len(m.src) {
		cur = m.src[s]
	}
	if m.matchBracketClass(prev, pi, ep-1) || !m.matchBracketClass(cur, pi, ep-1) {
		return ep, false
	}
	return ep, true
}

// maxExpand matches as many repetitions as possible, then backs off.
func (m *matcher) maxExpand(s, pi, ep int) int {
	i := 0
	for s+i < len(m.src) && m.singleMatch(m.src[s+i], pi, ep) {
		m.tick()
		i++
	}
	for ; i >= 0; i-- {
		if res := m.match(s+i, ep+1); res != -1 {
			return res
		}
	}
	return -1
}

// minExpand matches as few repetitions as possible.
func (m *matcher) minExpand(s, pi, ep int) int {
	for {
		if res := m.match(s, ep+1); res != -1 {
			return res
		}
		if s < len(m.src) && m.singleMatch(m.src[s], pi, ep) {
			s++
			continue
		}
		return -1
	}
}

func (m *matcher) startCapture(s, pi, what int) int {
	if m.level >= maxCaptures {
		m.fail("too many captures")
	}
	m.capture[m.level] = capture{init: s, len: what}
	m.level++
	res := m.match(s, pi)
	if res == -1 {
		m.level--
	}
	return res
}

func (m *matcher) endCapture(s, pi int) int {
	l := m.captureToClose()
	m.capture[l].len = s - m.capture[l].init
	res := m.match(s, pi)
	if res == -1 {
		m.capture[l].len = capUnfinished
	}
	return res
}

// captureToClose returns the innermost open capture.
func (m *matcher) captureToClose() int {
	for l := m.level - 1; l >= 0; l-- {
		if m.capture[l].len == capUnfinished {
			return l
		}
	}
	m.fail("invalid pattern capture")
	return 0
}

// matchCapture matches %1-%9: the text of an earlier capture again.
func (m *matcher) matchCapture(s int, digit byte) int {
	l := int(digit - '1')
	if l < 0 || l >= m.level || m.capture[l].len == capUnfinished {
		m.fail("invalid capture index")
	}
	c := m.capture[l]
	if c.len < 0 || len(m.src)-s < c.len || m.src[s:s+c.len] != m.src[c.init:c.init+c.len] {
		return -1
	}
	return s + c.len
}

// matchBalance matches %bxy (pi on x).
func (m *matcher) matchBalance(s, pi int) int {
	if m.p(pi) == 0 || m.p(pi+1) == 0 {
		m.fail("unbalanced pattern")
	}
	if s >= len(m.src) || m.src[s] != m.pat[pi] {
		return -1
	}
	open, closing := m.pat[pi], m.pat[pi+1]
	count := 1
	for s++; s < len(m.src); s++ {
		m.tick()
		switch m.src[s] {
		case closing:
			if count--; count == 0 {
				return s + 1
			}
		case open:
			count++
		}
	}
	return -1
}

// classEnd returns the index just after the single-character class at pi.
func (m *matcher) classEnd(pi int) int {
	c := m.p(pi)
	pi++
	switch c {
	case patternEscape:
		if m.p(pi) == 0 {
			m.fail("malformed pattern (ends with '%%')")
		}
		return pi + 1
	case '[':
		if m.p(pi) == '^' {
			pi++
		}
		for { // look for the ']'; the first character may be one
			if m.p(pi) == 0 {
				m.fail("malformed pattern (missing ']')")
			}
			c := m.pat[pi]
			pi++
			if c == patternEscape && m.p(pi) != 0 {
				pi++
			}
			if m.p(pi) == ']' {
				return pi + 1
			}
		}
	}
	return pi
}

// singleMatch reports whether c matches the class from pi to ep.
func (m *matcher) singleMatch(c byte, pi, ep int) bool {
	switch m.p(pi) {
	case '.':
		return true
	case patternEscape:
		return matchClass(c, m.p(pi+1))
	case '[':
		return m.matchBracketClass(c, pi, ep-1)
	}
	return m.p(pi) == c
}

// matchBracketClass reports whether c is in the set from pi ('[') to ec (']').
func (m *matcher) matchBracketClass(c byte, pi, ec int) bool {
	want := true
	if m.p(pi+1) == '^' {
		want = false
		pi++
	}
	for pi++; pi < ec; pi++ {
		switch {
		case m.pat[pi] == patternEscape:
			pi++
			if matchClass(c, m.p(pi)) {
				return want
			}
		case m.p(pi+1) == '-' && pi+2 < ec:
			if m.pat[pi] <= c && c <= m.pat[pi+2] {
				return want
			}
			pi += 2
		case m.pat[pi] == c:
			return want
		}
	}
	return !want
}

// matchClass reports whether c is in the class %cl (as the C library's
// ctype functions say in the "C" locale); an upper-case class is the
// complement; any other cl stands for itself.
func matchClass(c, cl byte) bool {
	var res bool
	switch cl | 0x20 {
	case 'a':
		res = isAlpha(c)
	case 'c':
		res = c < 0x20 || c == 0x7f
	case 'd':
		res = isDigit(c)
	case 'l':
		res = 'a' <= c && c <= 'z'
	case 'p':
		res = isPunct(c)
	case 's':
		res = c == ' ' || '\t' <= c && c <= '\r'
	case 'u':
		res = 'A' <= c && c <= 'Z'
	case 'w':
		res = isAlpha(c) || isDigit(c)
	case 'x':
		res = isDigit(c) || 'a' <= c|0x20 && c|0x20 <= 'f'
	case 'z':
		res = c == 0
	default:
		return cl == c
	}
	if 'A' <= cl && cl <= 'Z' {
		return !res
	}
	return res
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }
func isAlpha(c byte) bool { return 'a' <= c|0x20 && c|0x20 <= 'z' }
func isPunct(c byte) bool {
	return '!' <= c && c <= '/' || ':' <= c && c <= '@' || '[' <= c && c <= '`' || '{' <= c && c <= '~'
}
