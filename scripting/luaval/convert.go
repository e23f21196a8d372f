package luaval

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strconv"

	lua "github.com/yuin/gopher-lua"
)

// ToGo converts a Lua value to a plain Go value: nil, bool, int64 (for an
// integral number that fits) or float64, string, []any, map[string]any.
// Tables whose keys are exactly 1..n, or marked with Array, become []any;
// other tables become maps (number keys as strings). Functions, userdata
// other than Null, cycles, nesting deeper than MaxDepth and copies larger
// than MaxBytes are errors.
func ToGo(v lua.LValue) (any, error) {
	g, _, err := ToGoWithin(context.Background(), v, MaxBytes)
	return g, err
}

// ToGoWithin is ToGo with a size limit and a context: it fails once the
// copy would take more than limit bytes, or once ctx ends, and returns the bytes the copy took. A string counts its length,
// every value and table entry valueCost more, and a table reached twice
// (shared, not a cycle) counts twice, since it is copied twice.
func ToGoWithin(ctx context.Context, v lua.LValue, limit int) (any, int, error) {
	c := copier{left: limit, limit: limit, stop: NewStopper(ctx)}
	g, err := c.toGo(v, 0, nil)
	return g, limit - c.left, err
}

// ToGoFor is ToGo for a value of L, run by L: it stops once the context of
// L's running handler ends.
func ToGoFor(L *lua.LState, v lua.LValue) (any, error) {
	g, _, err := ToGoWithin(L.Context(), v, MaxBytes)
	return g, err
}

// valueCost is what the copy of one value or table entry counts, apart
// from a string's bytes: roughly its Go size.
const valueCost = 16

// copier holds what is left of a copy's size limit.
type copier struct {
	left, limit int
	stop        Stopper
}

// take counts n bytes of the copy against its limit.
func (c *copier) take(n int) error {
	if n > c.left {
		return fmt.Errorf("value too large: the copy would exceed %d bytes (a table reached twice counts twice)", c.limit)
	}
	c.left -= n
	if err := c.stop.Step(); err != nil {
		return fmt.Errorf("interrupted: %w", err)
	}
	return nil
}

func (c *copier) toGo(v lua.LValue, depth int, seen []*lua.LTable) (any, error) {
	size := valueCost
	if s, ok := v.(lua.LString); ok {
		size += len(s)
	}
	if err := c.take(size); err != nil {
		return nil, err
	}
	switch v := v.(type) {
	case *lua.LNilType:
		return nil, nil
	case lua.LBool:
		return bool(v), nil
	case lua.LNumber:
		f := float64(v)
		if f == math.Trunc(f) && math.Abs(f) < 1<<53 {
			return int64(f), nil
		}
		return f, nil
	case lua.LString:
		return string(v), nil
	case *lua.LTable:
		if err := c.take(tableCost); err != nil {
			return nil, err
		}
		return c.tableToGo(v, depth, seen)
	case *lua.LUserData:
		if IsNull(v) {
			return nil, nil
		}
	}
	return nil, fmt.Errorf("cannot convert %s", v.Type())
}

func (c *copier) tableToGo(t *lua.LTable, depth int, seen []*lua.LTable) (any, error) {
	if depth >= MaxDepth {
		return nil, fmt.Errorf("nested deeper than %d levels", MaxDepth)
	}
	for _, s := range seen {
		if s == t {
			return nil, fmt.Errorf("cycle: a table contains itself")
		}
	}
	seen = append(seen, t)
	if n := sequenceLength(t); n > 0 || markedArray(t) {
		out := make([]any, 0, min(max(n, 0), c.left/valueCost+1)) // what the limit allows
		for i := 1; i <= n; i++ {
			g, err := c.toGo(t.RawGetInt(i), depth+1, seen)
			if err != nil {
				return nil, fmt.Errorf("at [%d]: %w", i, err)
			}
			out = append(out, g)
		}
		return out, nil
	}
	out := make(map[string]any)
	var err error
	t.ForEach(func(k, v lua.LValue) {
		if err != nil {
			return
		}
		key, kerr := keyString(k)
		if kerr != nil {
			err = kerr
			return
		}
		if verr := c.take(valueCost + len(key)); verr != nil {
			err = verr
			return
		}
		g, verr := c.toGo(v, depth+1, seen)
		if verr != nil {
			err = fmt.Errorf("at .%s: %w", key, verr)
			return
		}
		out[key] = g
	})
	return out, err
}

// keyString converts a table key to an object key.
func keyString(k lua.LValue) (string, error) {
	switch k := k.(type) {
	case lua.LString:
		return string(k), nil
	case lua.LNumber:
		return string(formatNumber(nil, float64(k))), nil
	}
	return "", fmt.Errorf("cannot use a %s as an object key", k.Type())
}

// FromGo converts a plain Go value to Lua. Slices become tables marked as
// arrays; maps with string keys become tables.
func FromGo(L *lua.LState, v any) (lua.LValue, error) {
	switch v := v.(type) {
	case nil:
		return lua.LNil, nil
	case bool:
		return lua.LBool(v), nil
	case string:
		return lua.LString(v), nil
	case int:
		return lua.LNumber(v), nil
	case int8:
		return lua.LNumber(v), nil
	case int16:
		return lua.LNumber(v), nil
	case int32:
		return lua.LNumber(v), nil
	case int64:
		return lua.LNumber(v), nil
	case uint:
		return lua.LNumber(v), nil
	case uint8:
		return lua.LNumber(v), nil
	case uint16:
		return lua.LNumber(v), nil
	case uint32:
		return lua.LNumber(v), nil
	case uint64:
		return lua.LNumber(v), nil
	case float32:
		return lua.LNumber(v), nil
	case float64:
		return lua.LNumber(v), nil
	case json.Number:
		f, err := strconv.ParseFloat(string(v), 64)
		return lua.LNumber(f), err
	case []string:
		t := L.CreateTable(len(v), 0)
		for _, s := range v {
			t.Append(lua.LString(s))
		}
		return Array(L, t), nil
	case []any:
		return sliceFromGo(L, v)
	case map[string]string:
		t := L.CreateTable(0, len(v))
		for k, s := range v {
			t.RawSetString(k, lua.LString(s))
		}
		return t, nil
	case map[string]any:
		return mapFromGo(L, v)
	}
	return lua.LNil, fmt.Errorf("cannot convert Go %T to Lua", v)
}

func sliceFromGo(L *lua.LState, v []any) (lua.LValue, error) {
	t := L.CreateTable(len(v), 0)
	null := Null(L)
	for i, item := range v {
		lv, err := FromGo(L, item)
		if err != nil {
			return lua.LNil, fmt.Errorf("at [%d]: %w", i+1, err)
		}
		if lv == lua.LNil {
			lv = null
		}
		t.RawSetInt(i+1, lv)
	}
	return Array(L, t), nil
}

func mapFromGo(L *lua.LState, v map[string]any) (lua.LValue, error) {
	t := L.CreateTable(0, len(v))
	keys := make([]string, 0, len(v))
	for k := range v {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		lv, err := FromGo(L, v[k])
		if err != nil {
			return lua.LNil, fmt.Errorf("at .%s: %w", k, err)
		}
		t.RawSetString(k, lv)
	}
	return t, nil
}
