package scripting

import (
	"fmt"
	"math"
	"strings"

	"github.com/moongate/moongate/scripting/luaval"
	lua "github.com/yuin/gopher-lua"
)

// The string functions gopher-lua runs in Go without a bound: pattern
// matching (find, match, gmatch, gsub) stops when the handler's context
// ends; results (rep, gsub, format) are checked against maxString before
// they are built; byte returns at most maxResults values.

const (
	// maxString is the longest string a built-in may build.
	maxString = luaval.MaxBytes
	// maxResults is how many values a built-in may return at once (Lua
	// 5.1's LUAI_MAXCSTACK).
	maxResults = 8000
)

// openBoundedString replaces the unbounded functions of L's string library.
func openBoundedString(L *lua.LState) {
	str, ok := L.GetGlobal("string").(*lua.LTable)
	if !ok {
		return
	}
	gmatch := L.NewFunction(strGmatch)
	for name, fn := range map[string]lua.LValue{
		"find":   L.NewFunction(strFind),
		"match":  L.NewFunction(strMatch),
		"gmatch": gmatch,
		"gfind":  gmatch,
		"gsub":   L.NewFunction(strGsub),
		"rep":    L.NewFunction(strRep),
		"byte":   L.NewFunction(strByte),
		"format": L.NewFunction(strFormat),
		"dump":   lua.LNil,
	} {
		str.RawSetString(name, fn)
	}
}

// builder builds a string no longer than maxString; what names the
// function in the error past it.
type builder struct {
	L    *lua.LState
	what string
	b    []byte
}

// add appends s, raising an error if the result would be too long.
func (b *builder) add(s string) {
	if len(s) > maxString-len(b.b) {
		b.L.RaiseError("%s: result would exceed %d bytes", b.what, maxString)
	}
	b.grow(len(s))
	b.b = append(b.b, s...)
}

// addByte appends c, raising an error if the result would be too long.
func (b *builder) addByte(c byte) {
	if len(b.b) >= maxString {
		b.L.RaiseError("%s: result would exceed %d bytes", b.what, maxString)
	}
	b.grow(1)
	b.b = append(b.b, c)
}

// grow makes room for n more bytes, doubling the buffer (append grows a
// large slice by a quarter, copying it over and over), within maxString.
func (b *builder) grow(n int) {
	need := len(b.b) + n
	if need <= cap(b.b) {
		return
	}
	grown := make([]byte, len(b.b), min(max(2*cap(b.b), need, 64), maxString))
	copy(grown, b.b)
	b.b = grown
}

// strRep is string.rep with a ceiling on the size of its result.
func strRep(L *lua.LState) int {
	s := L.CheckString(1)
	n := L.CheckInt(2)
	if n <= 0 || s == "" {
		L.Push(lua.LString(""))
		return 1
	}
	if n > maxString/len(s) {
		L.RaiseError("string.rep: result would exceed %d bytes", maxString)
	}
	L.Push(lua.LString(strings.Repeat(s, n)))
	return 1
}

// posRelative turns a negative string position into one from the start.
func posRelative(pos, length int) int {
	if pos >= 0 {
		return pos
	}
	if -pos > length {
		return 0
	}
	return length + pos + 1
}

// strByte is string.byte returning at most maxResults values.
func strByte(L *lua.LState) int {
	s := L.CheckString(1)
	i := posRelative(L.OptInt(2, 1), len(s))
	j := posRelative(L.OptInt(3, i), len(s))
	i, j = max(i, 1), min(j, len(s))
	if i > j {
		return 0
	}
	if j-i >= maxResults {
		L.RaiseError("string slice too long (string.byte returns at most %d values)", maxResults)
	}
	for k := i; k <= j; k++ {
		L.Push(lua.LNumber(s[k-1]))
	}
	return j - i + 1
}

// strFind is string.find.
func strFind(L *lua.LState) int { return findAux(L, true) }

// strMatch is string.match.
func strMatch(L *lua.LState) int { return findAux(L, false) }

// findAux is string.find (find) or string.match, as in Lua 5.1.
func findAux(L *lua.LState, find bool) int {
	s, p := L.CheckString(1), L.CheckString(2)
	init := posRelative(L.OptInt(3, 1), len(s)) - 1
	init = min(max(init, 0), len(s))
	if find && (lua.LVAsBool(L.Get(4)) || !strings.ContainsAny(p, patternSpecials)) {
		if i := strings.Index(s[init:], p); i >= 0 {
			L.Push(lua.LNumber(init + i + 1))
			L.Push(lua.LNumber(init + i + len(p)))
			return 2
		}
		L.Push(lua.LNil)
		return 1
	}
	m := newMatcher(L.Context(), s, p)
	pi, anchor := 0, m.p(0) == '^'
	if anchor {
		pi = 1
	}
	for s1 := init; ; s1++ {
		e := m.mustAt(L, s1, pi)
		if e != -1 {
			if find {
				L.Push(lua.LNumber(s1 + 1))
				L.Push(lua.LNumber(e))
				return 2 + m.pushCaptures(L, -1, -1)
			}
			return m.pushCaptures(L, s1, e)
		}
		if s1 >= len(s) || anchor {
			break
		}
	}
	L.Push(lua.LNil)
	return 1
}

// mustAt is at, raising a malformed pattern or an interruption as a Lua
// error.
func (m *matcher) mustAt(L *lua.LState, s, pi int) int {
	e, err := m.at(s, pi)
	if err != nil {
		L.RaiseError("%s", err.Error())
	}
	return e
}

// pushCaptures pushes the captures of the match from s to e (the whole
// match if the pattern has none and s is not -1) and returns how many.
func (m *matcher) pushCaptures(L *lua.LState, s, e int) int {
	n := m.level
	if n == 0 && s != -1 {
		n = 1
	}
	for i := range n {
		L.Push(m.captureValue(L, i, s, e))
	}
	return n
}

// captureValue is capture i of the match from s to e: a string, or a
// position for ().
func (m *matcher) captureValue(L *lua.LState, i, s, e int) lua.LValue {
	if i >= m.level {
		if i != 0 {
			L.RaiseError("invalid capture index")
		}
		return lua.LString(m.src[s:e])
	}
	c := m.capture[i]
	switch c.len {
	case capUnfinished:
		L.RaiseError("unfinished capture")
	case capPosition:
		return lua.LNumber(c.init + 1)
	}
	return lua.LString(m.src[c.init : c.init+c.len])
}

// strGmatch is string.gmatch: an iterator over the matches of a pattern.
// As in Lua 5.1, '^' is not an anchor here.
func strGmatch(L *lua.LState) int {
	s, p := L.CheckString(1), L.CheckString(2)
	next := 0
	L.Push(L.NewFunction(func(L *lua.LState) int {
		m := newMatcher(L.Context(), s, p)
		for src := next; src <= len(s); src++ {
			if e := m.mustAt(L, src, 0); e != -1 {
				next = e
				if e == src {
					next++ // an empty match: go on at least one position
				}
				return m.pushCaptures(L, src, e)
			}
		}
		next = len(s) + 1
		return 0
	}))
	return 1
}

// strGsub is string.gsub, with a ceiling on the size of its result.
func strGsub(L *lua.LState) int {
	src, p := L.CheckString(1), L.CheckString(2)
	repl := L.Get(3)
	switch repl.Type() {
	case lua.LTNumber, lua.LTString, lua.LTTable, lua.LTFunction:
	default:
		L.ArgError(3, "string/function/table expected")
	}
	maxN := L.OptInt(4, len(src)+1)
	m := newMatcher(L.Context(), src, p)
	pi, anchor := 0, m.p(0) == '^'
	if anchor {
		pi = 1
	}
	b := builder{L: L, what: "string.gsub"}
	s, n := 0, 0
loop:
	for n < maxN {
		e := m.mustAt(L, s, pi)
		if e != -1 {
			n++
			m.addValue(L, &b, s, e, repl)
		}
		switch {
		case e != -1 && e > s:
			s = e
		case s < len(src):
			b.addByte(src[s])
			s++
		default:
			break loop
		}
		if anchor {
			break
		}
	}
	if s < len(src) {
		b.add(src[s:])
	}
	L.Push(lua.LString(b.b))
	L.Push(lua.LNumber(n))
	return 2
}

// addValue appends the replacement of the match from s to e.
func (m *matcher) addValue(L *lua.LState, b *builder, s, e int, repl lua.LValue) {
	var v lua.LValue
	switch r := repl.(type) {
	case lua.LString:
		m.addString(L, b, s, e, string(r))
		return
	case lua.LNumber:
		m.addString(L, b, s, e, r.String())
		return
	case *lua.LTable:
		v = L.GetTable(r, m.captureValue(L, 0, s, e))
	case *lua.LFunction:
		caps := make([]lua.LValue, 0, max(m.level, 1))
		for i := range max(m.level, 1) {
			caps = append(caps, m.captureValue(L, i, s, e))
		}
		L.CallByParam(lua.P{Fn: r, NRet: 1, Protect: false}, caps...)
		v = L.Get(-1)
		L.Pop(1)
	}
	switch v := v.(type) {
	case lua.LString:
		b.add(string(v))
	case lua.LNumber:
		b.add(v.String())
	default:
		if !lua.LVAsBool(v) { // nil or false: keep the original text
			b.add(m.src[s:e])
			return
		}
		L.RaiseError("invalid replacement value (a %s)", v.Type())
	}
}

// addString appends a replacement string, expanding %0-%9 and %%.
func (m *matcher) addString(L *lua.LState, b *builder, s, e int, repl string) {
	for i := 0; i < len(repl); i++ {
		if j := strings.IndexByte(repl[i:], patternEscape); j != 0 {
			if j < 0 {
				j = len(repl) - i
			}
			b.add(repl[i : i+j]) // the text up to the next '%'
			i += j - 1
			continue
		}
		i++
		switch d := byte(0); {
		case i < len(repl) && isDigit(repl[i]):
			d = repl[i]
			if d == '0' {
				b.add(m.src[s:e])
			} else {
				b.add(lua.LVAsString(m.captureValue(L, int(d-'1'), s, e)))
			}
		case i < len(repl):
			b.addByte(repl[i])
		default:
			b.addByte(0) // Lua 5.1 copies the terminating zero
		}
	}
}

// formatFlags are the flags a format item may have, each at most once.
const formatFlags = "-+ #0"

// strFormat is string.format as in Lua 5.1: at most two digits of width
// and of precision (so one item is at most 99 bytes besides its argument),
// and a ceiling on the size of the result.
func strFormat(L *lua.LState) int {
	f := L.CheckString(1)
	b := builder{L: L, what: "string.format"}
	arg := 1
	for i := 0; i < len(f); {
		c := f[i]
		i++
		if c != '%' {
			b.addByte(c)
			continue
		}
		if i < len(f) && f[i] == '%' {
			b.addByte('%')
			i++
			continue
		}
		arg++
		spec, conv, next := scanFormat(L, f, i)
		i = next
		formatItem(L, &b, spec, conv, arg)
	}
	L.Push(lua.LString(b.b))
	return 1
}

// formatSpec is what comes between '%' and the conversion of a format item.
type formatSpec struct {
	flags      string
	width      int // -1: none
	precision  int // -1: none
	goSpec     string
	leftAlign  bool
	hasPrecise bool
}

// scanFormat reads the flags, width and precision of the item at f[i:] and
// returns them, the conversion character and where the format goes on.
func scanFormat(L *lua.LState, f string, i int) (formatSpec, byte, int) {
	start := i
	for i < len(f) && strings.IndexByte(formatFlags, f[i]) >= 0 {
		i++
	}
	if i-start > len(formatFlags) {
		L.RaiseError("invalid format (repeated flags)")
	}
	spec := formatSpec{flags: f[start:i], width: -1, precision: -1}
	spec.width, i = twoDigits(f, i)
	if i < len(f) && f[i] == '.' {
		spec.hasPrecise = true
		spec.precision, i = twoDigits(f, i+1)
		spec.precision = max(spec.precision, 0)
	}
	if i < len(f) && isDigit(f[i]) {
		L.RaiseError("invalid format (width or precision too long)")
	}
	spec.leftAlign = strings.IndexByte(spec.flags, '-') >= 0
	spec.goSpec = "%" + f[start:i]
	if i >= len(f) {
		L.RaiseError("invalid option '%%' to 'format' (the format ends)")
	}
	return spec, f[i], i + 1
}

// twoDigits reads up to two decimal digits at f[i:]: their value (-1 for
// none) and where they end.
func twoDigits(f string, i int) (int, int) {
	n := -1
	for k := 0; k < 2 && i < len(f) && isDigit(f[i]); k++ {
		n = max(n, 0)*10 + int(f[i]-'0')
		i++
	}
	return n, i
}

// formatItem appends argument arg formatted by one item.
func formatItem(L *lua.LState, b *builder, spec formatSpec, conv byte, arg int) {
	switch conv {
	case 'c':
		b.add(pad(spec, string([]byte{byte(int64(L.CheckNumber(arg)))})))
	case 'd', 'i':
		b.add(fmt.Sprintf(spec.goSpec+"d", int64(L.CheckNumber(arg))))
	case 'o', 'x', 'X':
		b.add(fmt.Sprintf(spec.goSpec+string(conv), uint64(int64(L.CheckNumber(arg)))))
	case 'u':
		b.add(fmt.Sprintf(spec.goSpec+"d", uint64(int64(L.CheckNumber(arg)))))
	case 'e', 'E', 'f', 'g', 'G':
		b.add(formatFloat(spec, conv, float64(L.CheckNumber(arg))))
	case 'q':
		addQuoted(b, L.CheckString(arg))
	case 's':
		s := L.ToStringMeta(L.CheckAny(arg)).String()
		if spec.hasPrecise && len(s) > spec.precision {
			s = s[:spec.precision]
		}
		b.add(pad(spec, s))
	default:
		L.RaiseError("invalid option '%%%c' to 'format'", conv)
	}
}

// formatFloat formats f as C's printf does (six digits of precision unless
// told otherwise; inf and nan in letters).
func formatFloat(spec formatSpec, conv byte, f float64) string {
	if math.IsInf(f, 0) || math.IsNaN(f) {
		s := "nan"
		switch {
		case math.IsInf(f, -1):
			s = "-inf"
		case math.IsInf(f, 1) && strings.IndexByte(spec.flags, '+') >= 0:
			s = "+inf"
		case math.IsInf(f, 1):
			s = "inf"
		}
		if conv == 'E' || conv == 'G' {
			s = strings.ToUpper(s)
		}
		return pad(spec, s)
	}
	goSpec := spec.goSpec
	if !spec.hasPrecise {
		goSpec += ".6"
	}
	return fmt.Sprintf(goSpec+string(conv), f)
}

// pad pads s with spaces to the item's width.
func pad(spec formatSpec, s string) string {
	if len(s) >= spec.width {
		return s
	}
	fill := strings.Repeat(" ", spec.width-len(s))
	if spec.leftAlign {
		return s + fill
	}
	return fill + s
}

// addQuoted appends s between double quotes, escaped so that Lua reads it
// back (%q).
func addQuoted(b *builder, s string) {
	b.addByte('"')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '"', '\\', '\n':
			b.addByte('\\')
			b.addByte(c)
		case '\r':
			b.add(`\r`)
		case 0:
			b.add(`\000`)
		default:
			b.addByte(c)
		}
	}
	b.addByte('"')
}
