package gateway

import (
	"crypto/tls"
	"net/http/httptest"
	"testing"
)

func TestOriginsCompareSchemeHostAndPort(t *testing.T) {
	allow := []string{"https://good.example", "http://dev.example:8080/"}
	tests := []struct {
		host, origin string
		tls          bool
		list         []string
		want         bool
	}{
		{"good.example", "https://good.example", false, allow, true},
		{"good.example", "https://GOOD.example:443", false, allow, true},
		{"good.example", "http://good.example", false, allow, false},
		{"good.example", "https://good.example:8443", false, allow, false},
		{"dev.example:8080", "http://dev.example:8080", false, allow, true},
		{"dev.example:8080", "http://dev.example", false, allow, false},
		{"x", "https://evil.example", false, allow, false},
		{"x", "null", false, allow, false},
		// Same origin (empty list): host and port of Host, scheme fitting the connection.
		{"chat.example", "https://chat.example", false, nil, true}, // behind a TLS-terminating proxy
		{"chat.example", "http://chat.example", false, nil, true},
		{"chat.example", "http://chat.example", true, nil, false}, // an http page may not use a TLS gateway
		{"chat.example", "https://chat.example", true, nil, true},
		{"chat.example:8080", "http://chat.example:8080", false, nil, true},
		{"chat.example:8080", "http://chat.example:9090", false, nil, false},
		{"chat.example:8080", "http://chat.example", false, nil, false},
		{"chat.example", "ftp://chat.example", false, nil, false},
		{"chat.example", "https://evil.example", false, nil, false},
	}
	for _, tt := range tests {
		r := httptest.NewRequest("GET", "/ws", nil)
		r.Host = tt.host
		r.Header.Set("Origin", tt.origin)
		if tt.tls {
			r.TLS = &tls.ConnectionState{}
		}
		if got := originAllowed(r, tt.list); got != tt.want {
			t.Errorf("Host %s, Origin %s, TLS %v, list %v: %v, want %v", tt.host, tt.origin, tt.tls, tt.list, got, tt.want)
		}
	}
}
