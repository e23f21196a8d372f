package luaval

import (
	"context"
	"encoding/json"
	"math"
	"reflect"
	"strings"
	"testing"

	lua "github.com/yuin/gopher-lua"
)

func newState(t testing.TB) *lua.LState {
	L := lua.NewState()
	OpenJSON(L)
	t.Cleanup(L.Close)
	return L
}

func TestJSONRoundTrips(t *testing.T) {
	tests := []struct{ in, want string }{
		{`null`, `null`},
		{`true`, `true`},
		{`0`, `0`},
		{`-0`, `-0`},
		{`12345678901234`, `12345678901234`},
		{`1.5e300`, `1.5e+300`},
		{`0.1`, `0.1`},
		{`"a\"b\\c\n\u0001\u00e9\ud83d\ude00"`, `"a\"b\\c\n\u0001é😀"`},
		{`"\u2028"`, `"\u2028"`},
		{`"\ud800"`, `"�"`},
		{`[]`, `[]`},
		{`{}`, `{}`},
		{`[[],{}]`, `[[],{}]`},
		{`[1,null,3]`, `[1,null,3]`},
		{`{"b":null,"a":[true,false]}`, `{"a":[true,false],"b":null}`},
		{` { "z" : { "y" : [ 1 , 2 ] } } `, `{"z":{"y":[1,2]}}`},
		{`{"a":1,"a":2}`, `{"a":2}`},
	}
	L := newState(t)
	for _, tt := range tests {
		v, err := Decode(L, []byte(tt.in))
		if err != nil {
			t.Errorf("decode %s: %v", tt.in, err)
			continue
		}
		out, err := Encode(nil, v)
		if err != nil || string(out) != tt.want {
			t.Errorf("%s: encoded %s (%v), want %s", tt.in, out, err, tt.want)
		}
		v2, err := Decode(L, out)
		if err != nil {
			t.Errorf("re-decode %s: %v", out, err)
			continue
		}
		if out2, _ := Encode(nil, v2); string(out2) != string(out) {
			t.Errorf("%s: second round trip %s", tt.in, out2)
		}
	}
}

func TestDecodeRejectsMalformedJSON(t *testing.T) {
	tests := []struct{ in, want string }{
		{``, "json: unexpected end of input at offset 0"},
		{`{"a":`, "json: unexpected end of input at offset 5"},
		{`[1,]`, "json: unexpected character ']' at offset 3"},
		{`{a:1}`, "json: expected a string key, got character 'a' at offset 1"},
		{`{"a" 1}`, "json: expected ':' after an object key, got character '1' at offset 5"},
		{`[1 2]`, "json: expected ',' or ']', got character '2' at offset 3"},
		{`01`, "json: unexpected character '1' after the document at offset 1"},
		{`1.`, "json: invalid number: expected a digit after '.', got end of input at offset 2"},
		{`-`, "json: invalid number: expected a digit, got end of input at offset 1"},
		{`1e`, "json: invalid number: expected a digit in the exponent, got end of input at offset 2"},
		{`tru`, "json: unexpected character 't' at offset 0"},
		{`"a` + "\n" + `"`, `json: control character '\n' in a string at offset 2`},
		{`"\x"`, `json: invalid escape '\x' at offset 2`},
		{`"\u12zz"`, `json: invalid \u escape at offset 2`},
		{`"\u12"`, `json: unexpected end of input in a \u escape at offset 2`},
		{`"abc`, "json: unexpected end of input in a string at offset 4"},
		{`[1] x`, "json: unexpected character 'x' after the document at offset 4"},
		{strings.Repeat("[", MaxDepth+1), "json: nested deeper than 64 levels at offset 64"},
	}
	L := newState(t)
	for _, tt := range tests {
		_, err := Decode(L, []byte(tt.in))
		if err == nil || err.Error() != tt.want {
			t.Errorf("%q: got %v, want %s", tt.in, err, tt.want)
		}
		if err := json.Unmarshal([]byte(tt.in), new(any)); err == nil && tt.in != strings.Repeat("[", MaxDepth+1) {
			t.Errorf("%q: encoding/json accepts it", tt.in)
		}
	}
}

func TestEncodeErrorsSayWhere(t *testing.T) {
	L := newState(t)
	tests := []struct{ script, want string }{
		{`return {users = {{name = function() end}}}`, "at .users: at [1]: at .name: cannot encode a function as JSON"},
		{`local t = {}; t.self = t; return t`, "at .self: cycle: a table contains itself"},
		{`return {x = 0/0}`, "at .x: cannot encode NaN as JSON"},
		{`return {[true] = 1}`, "cannot use a boolean as an object key"},
	}
	for _, tt := range tests {
		if err := L.DoString(tt.script); err != nil {
			t.Fatal(err)
		}
		v := L.Get(-1)
		L.Pop(1)
		if _, err := Encode(nil, v); err == nil || err.Error() != tt.want {
			t.Errorf("%s: got %v, want %s", tt.script, err, tt.want)
		}
	}
	deep := L.NewTable()
	for range MaxDepth + 1 {
		outer := L.NewTable()
		outer.RawSetString("x", deep)
		deep = outer
	}
	if _, err := Encode(nil, deep); err == nil || !strings.Contains(err.Error(), "nested deeper than 64") {
		t.Errorf("deep table: %v", err)
	}
}

func TestJSONModuleFromLua(t *testing.T) {
	L := newState(t)
	err := L.DoString(`
		local v = json.decode('{"list":[1,2,{"k":"v"}],"none":null,"empty":[]}')
		assert(v.list[3].k == "v")
		assert(v.none == json.null)
		assert(json.encode(v.empty) == "[]")
		assert(json.encode({}) == "{}")
		assert(json.encode(json.array()) == "[]")
		local t = json.array({})
		t[1] = "a"
		assert(json.encode(t) == '["a"]')
		assert(json.encode({1, 2, 3}) == "[1,2,3]")
		assert(json.encode({[1] = "a", [3] = "c"}) == '{"1":"a","3":"c"}')
		assert(json.encode({n = 1.25, s = "x"}) == '{"n":1.25,"s":"x"}')
		local bad, err = json.decode("{")
		assert(bad == nil and err:find("got end of input", 1, true))
		local ok, msg = pcall(json.encode, {f = print})
		assert(not ok and msg:find("json.encode: at .f: cannot encode a function"))
		setmetatable(t, {})  -- a script replacing the mark must not break anything
		assert(json.encode(t) == '["a"]')
	`)
	if err != nil {
		t.Fatal(err)
	}
}

func TestGoConversions(t *testing.T) {
	L := newState(t)
	in := map[string]any{
		"s": "x", "b": true, "i": int64(3), "f": 2.5, "nil": nil,
		"list": []any{int64(1), "two", nil}, "strs": []string{"a"}, "m": map[string]string{"k": "v"},
		"empty": []any{}, "n": json.Number("7"), "u": uint8(9), "i32": int32(-4), "f32": float32(0.5),
	}
	lv, err := FromGo(L, in)
	if err != nil {
		t.Fatal(err)
	}
	back, err := ToGo(lv)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"s": "x", "b": true, "i": int64(3), "f": 2.5,
		"list": []any{int64(1), "two", nil}, "strs": []any{"a"}, "m": map[string]any{"k": "v"},
		"empty": []any{}, "n": int64(7), "u": int64(9), "i32": int64(-4), "f32": 0.5,
	}
	if !reflect.DeepEqual(back, want) {
		t.Errorf("got  %#v\nwant %#v", back, want)
	}
	if _, err := FromGo(L, struct{}{}); err == nil {
		t.Error("FromGo accepted a struct")
	}
	if _, err := ToGo(L.NewFunction(func(*lua.LState) int { return 0 })); err == nil {
		t.Error("ToGo accepted a function")
	}
	if v, _ := ToGo(lua.LNumber(math.Pow(2, 60))); v != math.Pow(2, 60) {
		t.Errorf("a number beyond 2^53 should stay a float64, got %T", v)
	}
}

func FuzzDecode(f *testing.F) {
	for _, seed := range []string{`null`, `{"a":[1,2,{"b":null}]}`, `"\ud83d\ude00"`, `[]`, `{}`, `-0.5e-3`,
		`[1,]`, `{"a"`, `"\u12"`, `tru`, "\"\xff\"", `[[[[[[]]]]]]`, `1e999`, `{"type":"say","text":"hi"}`, `  7  `} {
		f.Add([]byte(seed))
	}
	L := lua.NewState()
	defer L.Close()
	f.Fuzz(func(t *testing.T, data []byte) {
		v, err := Decode(L, data)
		if err != nil {
			return
		}
		out, err := Encode(nil, v)
		if err != nil {
			t.Fatalf("decoded %q but cannot encode it: %v", data, err)
		}
		v2, err := Decode(L, out)
		if err != nil {
			t.Fatalf("cannot decode own output %q: %v", out, err)
		}
		out2, _ := Encode(nil, v2)
		if string(out) != string(out2) {
			t.Fatalf("unstable: %q then %q", out, out2)
		}
		if !json.Valid(out) {
			t.Fatalf("invalid JSON produced: %q", out)
		}
	})
}

// TestCopiesAreBounded: a graph of shared tables that would copy or encode
// to gigabytes fails at MaxBytes, with an error that names the limit.
func TestCopiesAreBounded(t *testing.T) {
	L := newState(t)
	if err := L.DoString(`shared = {} for i = 1, 26 do shared = {a = shared, b = shared} end`); err != nil {
		t.Fatal(err)
	}
	v := L.GetGlobal("shared")
	if _, err := ToGo(v); err == nil || !strings.Contains(err.Error(), "the copy would exceed 16777216 bytes") {
		t.Errorf("ToGo: %v", err)
	}
	if _, err := Encode(nil, v); err == nil || !strings.Contains(err.Error(), "result would exceed 16777216 bytes") {
		t.Errorf("Encode: %v", err)
	}
	if _, used, err := ToGoWithin(context.Background(), lua.LString("abc"), 100); err != nil || used != 3+valueCost {
		t.Errorf("a small string: %d bytes, %v", used, err)
	}
	if _, _, err := ToGoWithin(context.Background(), lua.LString("abc"), 10); err == nil {
		t.Error("a copy over its limit was accepted")
	}
}

// TestDecodeIsBounded: a document that would decode to more than MaxBytes
// of Lua values (millions of empty tables) is an error, not gigabytes.
func TestDecodeIsBounded(t *testing.T) {
	L := newState(t)
	doc := "[" + strings.Repeat("[],", 1<<20) + "[]]"
	if _, err := Decode(L, []byte(doc)); err == nil || !strings.Contains(err.Error(), "would exceed 16777216 bytes") {
		t.Errorf("a million empty tables: %v", err)
	}
	if _, err := Decode(L, []byte(`{"a":[1,"x",null,{}]}`)); err != nil {
		t.Errorf("a small document: %v", err)
	}
}
