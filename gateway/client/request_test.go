package client

import (
	"net/http/httptest"
	"strings"
	"testing"
)

func TestRequestKeepsFirstValuesWithinABound(t *testing.T) {
	r := httptest.NewRequest("GET", "/ws?a=1&a=2&b=x", nil)
	r.Header.Add("X-Name", "bob")
	r.Header.Add("X-Name", "alice")
	for i := range 100 { // 100 KiB of headers in all
		r.Header.Set("X-Pad-"+strings.Repeat("p", i%10)+string(rune('a'+i%26))+string(rune('a'+i/26)), strings.Repeat("v", 1<<10))
	}
	req := NewRequest(r, nil, "")
	if got := req.Header["X-Name"]; len(got) != 1 || got[0] != "bob" {
		t.Errorf("X-Name kept as %q, want the first value only", got)
	}
	if got := req.Query["a"]; len(got) != 1 || got[0] != "1" || req.Query.Get("b") != "x" {
		t.Errorf("query kept as %v", req.Query)
	}
	kept := 0
	for k, v := range req.Header {
		kept += len(k) + len(v[0])
	}
	if kept > KeptBytes || kept < KeptBytes-2<<10 {
		t.Errorf("kept %d bytes of headers, want at most %d and close to it", kept, KeptBytes)
	}
}
