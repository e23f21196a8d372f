package luaval

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strconv"
	"unicode/utf8"

	lua "github.com/yuin/gopher-lua"
)

// Encode appends v to buf as compact JSON. Object keys are sorted, so the
// output is deterministic. NaN, infinities, functions, userdata other than
// Null, cycles, nesting deeper than MaxDepth and a text longer than MaxBytes
// (a table reached twice is written twice, and each table counts tableCost
// bytes more) are errors that say where.
func Encode(buf []byte, v lua.LValue) ([]byte, error) {
	return EncodeContext(context.Background(), buf, v)
}

// EncodeContext is Encode that also stops with an error once ctx ends.
func EncodeContext(ctx context.Context, buf []byte, v lua.LValue) ([]byte, error) {
	e := encoder{buf: buf, limit: len(buf) + MaxBytes, stop: NewStopper(ctx)}
	if err := e.value(v, 0); err != nil {
		return buf, err
	}
	return e.buf, nil
}

type encoder struct {
	buf   []byte
	limit int // len(buf) must stay within it
	stop  Stopper
	seen  []*lua.LTable
	keys  []string // scratch for sorting object keys
}

// errTooLong is the error of an encoding past MaxBytes.
var errTooLong = fmt.Errorf("result would exceed %d bytes", MaxBytes)

// room reports an error unless n more bytes fit within the limit.
func (e *encoder) room(n int) error {
	if n > e.limit-len(e.buf) {
		return errTooLong
	}
	return nil
}

func (e *encoder) value(v lua.LValue, depth int) error {
	if err := e.room(32); err != nil { // the longest number, a literal, a separator
		return err
	}
	if err := e.stop.Step(); err != nil {
		return fmt.Errorf("interrupted: %w", err)
	}
	switch v := v.(type) {
	case *lua.LNilType:
		e.buf = append(e.buf, "null"...)
	case lua.LBool:
		e.buf = strconv.AppendBool(e.buf, bool(v))
	case lua.LNumber:
		f := float64(v)
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return fmt.Errorf("cannot encode %v as JSON", f)
		}
		e.buf = formatNumber(e.buf, f)
	case lua.LString:
		return e.str(string(v))
	case *lua.LTable:
		return e.table(v, depth)
	case *lua.LUserData:
		if !IsNull(v) {
			return fmt.Errorf("cannot encode userdata as JSON")
		}
		e.buf = append(e.buf, "null"...)
	default:
		return fmt.Errorf("cannot encode a %s as JSON", v.Type())
	}
	return nil
}

func (e *encoder) table(t *lua.LTable, depth int) error {
	if err := e.room(tableCost); err != nil {
		return err
	}
	e.limit -= tableCost // a table counts tableCost bytes more than its text
	if depth >= MaxDepth {
		return fmt.Errorf("nested deeper than %d levels", MaxDepth)
	}
	if slices.Contains(e.seen, t) {
		return fmt.Errorf("cycle: a table contains itself")
	}
	e.seen = append(e.seen, t)
	defer func() { e.seen = e.seen[:len(e.seen)-1] }()
	if n := sequenceLength(t); n > 0 || markedArray(t) {
		return e.array(t, max(n, 0), depth)
	}
	return e.object(t, depth)
}

func (e *encoder) array(t *lua.LTable, n, depth int) error {
	e.buf = append(e.buf, '[')
	for i := 1; i <= n; i++ {
		if i > 1 {
			e.buf = append(e.buf, ',')
		}
		if err := e.value(t.RawGetInt(i), depth+1); err != nil {
			return fmt.Errorf("at [%d]: %w", i, err)
		}
	}
	e.buf = append(e.buf, ']')
	return nil
}

func (e *encoder) object(t *lua.LTable, depth int) error {
	start := len(e.keys)
	var keyErr error
	t.ForEach(func(k, _ lua.LValue) {
		s, err := keyString(k)
		if err != nil && keyErr == nil {
			keyErr = err
		}
		e.keys = append(e.keys, s)
	})
	if keyErr != nil {
		e.keys = e.keys[:start]
		return keyErr
	}
	keys := e.keys[start:]
	slices.Sort(keys)
	e.buf = append(e.buf, '{')
	for i, k := range keys {
		if i > 0 {
			e.buf = append(e.buf, ',')
		}
		if err := e.str(k); err != nil {
			e.keys = e.keys[:start]
			return err
		}
		e.buf = append(e.buf, ':')
		v := t.RawGetString(k)
		if v == lua.LNil { // a number key, stored as a number
			if f, err := strconv.ParseFloat(k, 64); err == nil {
				v = t.RawGet(lua.LNumber(f))
			}
		}
		if err := e.value(v, depth+1); err != nil {
			e.keys = e.keys[:start]
			return fmt.Errorf("at .%s: %w", k, err)
		}
	}
	e.keys = e.keys[:start]
	e.buf = append(e.buf, '}')
	return nil
}

// str appends s as a JSON string if it fits within the limit. Escapes can
// make it up to six times longer than s, so it is checked before and after.
func (e *encoder) str(s string) error {
	if err := e.room(len(s) + 2); err != nil {
		return err
	}
	e.buf = appendString(e.buf, s)
	if len(e.buf) > e.limit {
		return errTooLong
	}
	return nil
}

// formatNumber appends f: integers below 2^53 without a fraction or an
// exponent, other numbers in the shortest form that reads back the same.
func formatNumber(buf []byte, f float64) []byte {
	if f == math.Trunc(f) && math.Abs(f) < 1<<53 {
		if f == 0 && math.Signbit(f) {
			return append(buf, "-0"...)
		}
		return strconv.AppendInt(buf, int64(f), 10)
	}
	return strconv.AppendFloat(buf, f, 'g', -1, 64)
}

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string. Invalid UTF-8 becomes U+FFFD;
// control characters and U+2028/U+2029 are escaped.
func appendString(buf []byte, s string) []byte {
	buf = append(buf, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf {
			i++
			continue
		}
		if c < utf8.RuneSelf {
			buf = append(buf, s[start:i]...)
			buf = appendEscape(buf, c)
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 || r == '\u2028' || r == '\u2029' {
			buf = append(buf, s[start:i]...)
			if r == utf8.RuneError {
				buf = append(buf, `\ufffd`...)
			} else {
				buf = append(buf, `\u202`...)
				buf = append(buf, hexDigits[r&0xF])
			}
			i += size
			start = i
			continue
		}
		i += size
	}
	buf = append(buf, s[start:]...)
	return append(buf, '"')
}

func appendEscape(buf []byte, c byte) []byte {
	switch c {
	case '"', '\\':
		return append(buf, '\\', c)
	case '\n':
		return append(buf, '\\', 'n')
	case '\r':
		return append(buf, '\\', 'r')
	case '\t':
		return append(buf, '\\', 't')
	}
	return append(buf, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
}
