package cluster

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
)

// How a store value is kept in a Redis string. A whole number is kept as
// its decimal digits, so that INCRBY works on it in place; every other
// value starts with a tag byte that no decimal number starts with.
const (
	tagString = 's'
	tagFloat  = 'n'
	tagTrue   = 'T'
	tagFalse  = 'F'
	tagNil    = 'N'
	tagJSON   = 'j' // a table: []any or map[string]any
)

// encode turns a store value (the plain Go values of package luaval) into
// the string kept in Redis.
func encode(v any) (string, error) {
	switch v := v.(type) {
	case nil:
		return string(tagNil), nil
	case bool:
		if v {
			return string(tagTrue), nil
		}
		return string(tagFalse), nil
	case int64:
		return strconv.FormatInt(v, 10), nil
	case int:
		return strconv.Itoa(v), nil
	case float64:
		return string(tagFloat) + strconv.FormatFloat(v, 'g', -1, 64), nil
	case string:
		return string(tagString) + v, nil
	case []any, map[string]any:
		b, err := json.Marshal(v)
		if err != nil {
			return "", fmt.Errorf("encode a table: %w", err)
		}
		return string(tagJSON) + string(b), nil
	}
	return "", fmt.Errorf("cannot store a %T", v)
}

// decode is encode's inverse.
func decode(s string) (any, error) {
	if s == "" {
		return nil, fmt.Errorf("an empty stored value")
	}
	switch s[0] {
	case tagNil:
		return nil, nil
	case tagTrue:
		return true, nil
	case tagFalse:
		return false, nil
	case tagString:
		return s[1:], nil
	case tagFloat:
		return strconv.ParseFloat(s[1:], 64)
	case tagJSON:
		d := json.NewDecoder(bytes.NewReader([]byte(s[1:])))
		d.UseNumber()
		var v any
		if err := d.Decode(&v); err != nil {
			return nil, fmt.Errorf("decode a table: %w", err)
		}
		return numbers(v), nil
	}
	return strconv.ParseInt(s, 10, 64)
}

// numbers replaces the json.Numbers in v by int64 (a whole number) or
// float64, as luaval gives them.
func numbers(v any) any {
	switch v := v.(type) {
	case json.Number:
		if n, err := v.Int64(); err == nil {
			return n
		}
		f, _ := v.Float64()
		return f
	case []any:
		for i := range v {
			v[i] = numbers(v[i])
		}
	case map[string]any:
		for k := range v {
			v[k] = numbers(v[k])
		}
	}
	return v
}

// isScalar reports whether v can equal a stored value in a comparison
// (SetIf, DeleteIf): tables never do.
func isScalar(v any) bool {
	switch v.(type) {
	case string, int64, int, float64, bool:
		return true
	}
	return false
}
