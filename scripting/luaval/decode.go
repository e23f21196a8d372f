package luaval

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"

	lua "github.com/yuin/gopher-lua"
)

// Decode parses one JSON document into Lua values: objects and arrays
// become tables (arrays marked with Array), null becomes the state's Null.
// Anything after the document but white space is an error, and so is a
// document whose values would take more than MaxBytes (counted as ToGo
// does, a table tableCost more) or whose decoding outlasts L's context.
func Decode(L *lua.LState, data []byte) (lua.LValue, error) {
	d := decoder{L: L, s: data, null: Null(L), left: MaxBytes, stop: NewStopper(L.Context())}
	d.space()
	v, err := d.value(0)
	if err != nil {
		return lua.LNil, err
	}
	d.space()
	if d.i < len(d.s) {
		return lua.LNil, d.errorf("unexpected %s after the document", d.what())
	}
	return v, nil
}

type decoder struct {
	L    *lua.LState
	s    []byte
	i    int
	null lua.LValue // L's json.null
	left int        // what the values may still take
	stop Stopper
}

// take counts n bytes of decoded values against the limit.
func (d *decoder) take(n int) error {
	if n > d.left {
		return d.errorf("value too large: the decoded values would exceed %d bytes", MaxBytes)
	}
	d.left -= n
	if err := d.stop.Step(); err != nil {
		return d.errorf("interrupted: %v", err)
	}
	return nil
}

func (d *decoder) errorf(format string, args ...any) error {
	return fmt.Errorf("json: "+format+" at offset %d", append(args, d.i)...)
}

// what names the byte at the cursor for an error message.
func (d *decoder) what() string {
	if d.i >= len(d.s) {
		return "end of input"
	}
	return fmt.Sprintf("character %q", d.s[d.i])
}

func (d *decoder) space() {
	for d.i < len(d.s) {
		switch d.s[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

func (d *decoder) value(depth int) (lua.LValue, error) {
	if d.i >= len(d.s) {
		return lua.LNil, d.errorf("unexpected end of input")
	}
	if err := d.take(valueCost); err != nil {
		return lua.LNil, err
	}
	switch c := d.s[d.i]; {
	case c == '{':
		if err := d.take(tableCost); err != nil {
			return lua.LNil, err
		}
		return d.object(depth)
	case c == '[':
		if err := d.take(tableCost); err != nil {
			return lua.LNil, err
		}
		return d.array(depth)
	case c == '"':
		s, err := d.str()
		if err == nil {
			err = d.take(len(s))
		}
		return lua.LString(s), err
	case c == '-' || c >= '0' && c <= '9':
		return d.number()
	case c == 't':
		return lua.LTrue, d.literal("true")
	case c == 'f':
		return lua.LFalse, d.literal("false")
	case c == 'n':
		return d.null, d.literal("null")
	}
	return lua.LNil, d.errorf("unexpected %s", d.what())
}

func (d *decoder) literal(word string) error {
	if !strings.HasPrefix(string(d.s[d.i:min(len(d.s), d.i+len(word))]), word) {
		return d.errorf("unexpected %s", d.what())
	}
	d.i += len(word)
	return nil
}

func (d *decoder) object(depth int) (lua.LValue, error) {
	if depth >= MaxDepth {
		return lua.LNil, d.errorf("nested deeper than %d levels", MaxDepth)
	}
	t := d.L.NewTable()
	d.i++ // {
	d.space()
	if d.i < len(d.s) && d.s[d.i] == '}' {
		d.i++
		return t, nil
	}
	for {
		d.space()
		if d.i >= len(d.s) || d.s[d.i] != '"' {
			return lua.LNil, d.errorf("expected a string key, got %s", d.what())
		}
		key, err := d.str()
		if err == nil {
			err = d.take(valueCost + len(key))
		}
		if err != nil {
			return lua.LNil, err
		}
		d.space()
		if d.i >= len(d.s) || d.s[d.i] != ':' {
			return lua.LNil, d.errorf("expected ':' after an object key, got %s", d.what())
		}
		d.i++
		d.space()
		v, err := d.value(depth + 1)
		if err != nil {
			return lua.LNil, err
		}
		t.RawSetString(key, v)
		if done, err := d.next('}'); done || err != nil {
			return t, err
		}
	}
}

func (d *decoder) array(depth int) (lua.LValue, error) {
	if depth >= MaxDepth {
		return lua.LNil, d.errorf("nested deeper than %d levels", MaxDepth)
	}
	t := Array(d.L, d.L.NewTable())
	d.i++ // [
	d.space()
	if d.i < len(d.s) && d.s[d.i] == ']' {
		d.i++
		return t, nil
	}
	for n := 1; ; n++ {
		d.space()
		v, err := d.value(depth + 1)
		if err != nil {
			return lua.LNil, err
		}
		t.RawSetInt(n, v)
		if done, err := d.next(']'); done || err != nil {
			return t, err
		}
	}
}

// next consumes the separator after a member: ',' (more follow) or end.
func (d *decoder) next(end byte) (bool, error) {
	d.space()
	if d.i >= len(d.s) {
		return false, d.errorf("unexpected end of input")
	}
	switch d.s[d.i] {
	case ',':
		d.i++
		return false, nil
	case end:
		d.i++
		return true, nil
	}
	return false, d.errorf("expected ',' or '%c', got %s", end, d.what())
}

// str reads a string at the cursor (which is on its opening quote).
func (d *decoder) str() (string, error) {
	d.i++
	start := d.i
	for d.i < len(d.s) {
		c := d.s[d.i]
		switch {
		case c == '"':
			raw := d.s[start:d.i]
			d.i++
			if utf8.Valid(raw) {
				return string(raw), nil
			}
			return strings.ToValidUTF8(string(raw), "\uFFFD"), nil
		case c == '\\':
			return d.escapedStr(start)
		case c < 0x20:
			return "", d.errorf("control character %q in a string", c)
		}
		d.i++
	}
	return "", d.errorf("unexpected end of input in a string")
}

// escapedStr finishes a string that contains escapes; the cursor is on
// the first backslash and start is where the string's text began.
func (d *decoder) escapedStr(start int) (string, error) {
	var b strings.Builder
	b.Write(d.s[start:d.i])
	for d.i < len(d.s) {
		c := d.s[d.i]
		switch {
		case c == '"':
			d.i++
			return strings.ToValidUTF8(b.String(), "\uFFFD"), nil
		case c < 0x20:
			return "", d.errorf("control character %q in a string", c)
		case c != '\\':
			b.WriteByte(c)
			d.i++
			continue
		}
		if d.i+1 >= len(d.s) {
			break
		}
		d.i++
		switch e := d.s[d.i]; e {
		case '"', '\\', '/':
			b.WriteByte(e)
		case 'b':
			b.WriteByte('\b')
		case 'f':
			b.WriteByte('\f')
		case 'n':
			b.WriteByte('\n')
		case 'r':
			b.WriteByte('\r')
		case 't':
			b.WriteByte('\t')
		case 'u':
			r, err := d.unicodeEscape()
			if err != nil {
				return "", err
			}
			b.WriteRune(r)
			continue
		default:
			return "", d.errorf("invalid escape '\\%c'", e)
		}
		d.i++
	}
	return "", d.errorf("unexpected end of input in a string")
}

// unicodeEscape reads \uXXXX (the cursor on 'u'), joining surrogate pairs.
func (d *decoder) unicodeEscape() (rune, error) {
	r, err := d.hex4()
	if err != nil {
		return 0, err
	}
	if utf16.IsSurrogate(r) {
		if d.i+1 < len(d.s) && d.s[d.i] == '\\' && d.s[d.i+1] == 'u' {
			save := d.i
			d.i++
			r2, err := d.hex4()
			if err == nil {
				if pair := utf16.DecodeRune(r, r2); pair != utf8.RuneError {
					return pair, nil
				}
			}
			d.i = save
		}
		return utf8.RuneError, nil
	}
	return r, nil
}

// hex4 reads the four hex digits after 'u' and leaves the cursor after them.
func (d *decoder) hex4() (rune, error) {
	if d.i+5 > len(d.s) {
		return 0, d.errorf("unexpected end of input in a \\u escape")
	}
	v, err := strconv.ParseUint(string(d.s[d.i+1:d.i+5]), 16, 32)
	if err != nil {
		return 0, d.errorf("invalid \\u escape")
	}
	d.i += 5
	return rune(v), nil
}

// number reads a number, checking JSON's grammar.
func (d *decoder) number() (lua.LValue, error) {
	start := d.i
	if d.s[d.i] == '-' {
		d.i++
	}
	switch {
	case d.i < len(d.s) && d.s[d.i] == '0':
		d.i++
	case d.i < len(d.s) && d.s[d.i] >= '1' && d.s[d.i] <= '9':
		d.digits()
	default:
		return lua.LNil, d.errorf("invalid number: expected a digit, got %s", d.what())
	}
	if d.i < len(d.s) && d.s[d.i] == '.' {
		d.i++
		if d.digits() == 0 {
			return lua.LNil, d.errorf("invalid number: expected a digit after '.', got %s", d.what())
		}
	}
	if d.i < len(d.s) && (d.s[d.i] == 'e' || d.s[d.i] == 'E') {
		d.i++
		if d.i < len(d.s) && (d.s[d.i] == '+' || d.s[d.i] == '-') {
			d.i++
		}
		if d.digits() == 0 {
			return lua.LNil, d.errorf("invalid number: expected a digit in the exponent, got %s", d.what())
		}
	}
	f, err := strconv.ParseFloat(string(d.s[start:d.i]), 64)
	if err != nil {
		return lua.LNil, d.errorf("number %s out of range", d.s[start:d.i])
	}
	return lua.LNumber(f), nil
}

func (d *decoder) digits() int {
	n := 0
	for d.i < len(d.s) && d.s[d.i] >= '0' && d.s[d.i] <= '9' {
		d.i++
		n++
	}
	return n
}
