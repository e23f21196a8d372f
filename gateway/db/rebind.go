package db

import (
	"strconv"
	"strings"
)

// Rebind returns q with each `?` placeholder written $1, $2, … in order, as
// PostgreSQL wants it. A `?` inside a string literal ('…', E'…' with its
// backslash escapes), a quoted identifier ("…"), a dollar-quoted string
// ($$…$$, $tag$…$tag$) or a comment (-- to the end of the line, /* … */,
// nested) is left as it is. There is no escape for a bare `?`: PostgreSQL
// operators spelled with one (the jsonb `?`, `?|`, `?&`) are written with
// their functions (jsonb_exists, jsonb_exists_any, jsonb_exists_all).
func Rebind(q string) string {
	if !strings.Contains(q, "?") {
		return q
	}
	var b strings.Builder
	b.Grow(len(q) + 8)
	n := 0
	for i := 0; i < len(q); {
		c := q[i]
		switch {
		case c == '?':
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			i++
			continue
		case c == '\'':
			escapes := i > 0 && (q[i-1] == 'e' || q[i-1] == 'E') && (i < 2 || !identByte(q[i-2]))
			j := skipQuoted(q, i, '\'', escapes)
			b.WriteString(q[i:j])
			i = j
			continue
		case c == '"':
			j := skipQuoted(q, i, '"', false)
			b.WriteString(q[i:j])
			i = j
			continue
		case c == '-' && strings.HasPrefix(q[i:], "--"):
			j := strings.IndexByte(q[i:], '\n')
			if j < 0 {
				j = len(q) - i
			}
			b.WriteString(q[i : i+j])
			i += j
			continue
		case c == '/' && strings.HasPrefix(q[i:], "/*"):
			j := skipBlockComment(q, i)
			b.WriteString(q[i:j])
			i = j
			continue
		case c == '$' && (i == 0 || !identByte(q[i-1])):
			if tag, ok := dollarTag(q[i:]); ok {
				end := strings.Index(q[i+len(tag):], tag)
				j := len(q)
				if end >= 0 {
					j = i + len(tag) + end + len(tag)
				}
				b.WriteString(q[i:j])
				i = j
				continue
			}
		}
		b.WriteByte(c)
		i++
	}
	return b.String()
}

// identByte reports whether c may be part of an unquoted identifier.
func identByte(c byte) bool {
	return c == '_' || c == '$' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= 0x80
}

// skipQuoted returns the index just past the quoted text starting at
// q[i] == quote (a doubled quote stands for one; with escapes, so does a
// backslash before any byte), or len(q) if it is not closed.
func skipQuoted(q string, i int, quote byte, escapes bool) int {
	for j := i + 1; j < len(q); j++ {
		switch q[j] {
		case '\\':
			if escapes {
				j++
			}
		case quote:
			if j+1 < len(q) && q[j+1] == quote {
				j++
				continue
			}
			return j + 1
		}
	}
	return len(q)
}

// skipBlockComment returns the index just past the (possibly nested)
// comment starting at q[i:], or len(q) if it is not closed.
func skipBlockComment(q string, i int) int {
	depth := 0
	for j := i; j+1 < len(q); j++ {
		switch {
		case q[j] == '/' && q[j+1] == '*':
			depth++
			j++
		case q[j] == '*' && q[j+1] == '/':
			depth--
			j++
			if depth == 0 {
				return j + 1
			}
		}
	}
	return len(q)
}

// dollarTag returns the dollar-quote opening s starts with ($$ or $tag$,
// the tag an identifier not starting with a digit), if it starts with one.
func dollarTag(s string) (string, bool) {
	for j := 1; j < len(s); j++ {
		c := s[j]
		switch {
		case c == '$':
			return s[:j+1], true
		case c >= '0' && c <= '9':
			if j == 1 {
				return "", false // $1: a positional parameter
			}
		case c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= 0x80:
		default:
			return "", false
		}
	}
	return "", false
}
