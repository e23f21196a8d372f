package auth

import (
	"errors"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/moongate/moongate/gateway/config"
)

func TestVerify(t *testing.T) {
	t.Setenv("TEST_SECRET", "s3cret")
	v, err := NewVerifier(&config.Auth{SecretEnv: "TEST_SECRET"})
	if err != nil {
		t.Fatal(err)
	}
	good, _ := Sign([]byte("s3cret"), "u1", "Alice", time.Hour, map[string]any{"role": "admin"})
	expired, _ := Sign([]byte("s3cret"), "u1", "Alice", -time.Hour, nil)
	forged, _ := Sign([]byte("other"), "u1", "Alice", time.Hour, nil)
	tests := []struct {
		name, query, header, reason string
		sub                         any
	}{
		{"query token", "?token=" + good, "", "", "u1"},
		{"bearer header", "", "Bearer " + good, "", "u1"},
		{"guest", "", "", "", nil},
		{"expired", "?token=" + expired, "", "token expired", nil},
		{"wrong signature", "?token=" + forged, "", "token signature invalid", nil},
		{"garbage", "?token=abc", "", "token malformed", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/ws"+tt.query, nil)
			if tt.header != "" {
				r.Header.Set("Authorization", tt.header)
			}
			claims, err := v.Verify(r)
			var rej *Rejection
			if tt.reason != "" {
				if !errors.As(err, &rej) || rej.Reason != tt.reason {
					t.Fatalf("got %v, want rejection %q", err, tt.reason)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if claims["sub"] != tt.sub {
				t.Errorf("claims %v", claims)
			}
			if tt.sub != nil && (claims["name"] != "Alice" || claims["role"] != "admin") {
				t.Errorf("claims %v", claims)
			}
		})
	}
}

func TestRequiredSignIn(t *testing.T) {
	if _, err := NewVerifier(&config.Auth{SecretEnv: "UNSET_SECRET_FOR_TEST", Required: true}); err == nil {
		t.Fatal("a required sign-in without a secret must not start")
	}
	t.Setenv("TEST_SECRET", "s3cret")
	v, _ := NewVerifier(&config.Auth{SecretEnv: "TEST_SECRET", Required: true})
	_, err := v.Verify(httptest.NewRequest("GET", "/ws", nil))
	var rej *Rejection
	if !errors.As(err, &rej) {
		t.Fatalf("a guest was let in: %v", err)
	}
	unset, _ := NewVerifier(&config.Auth{SecretEnv: "UNSET_SECRET_FOR_TEST"})
	if _, err := unset.Verify(httptest.NewRequest("GET", "/ws?token=x", nil)); !errors.As(err, &rej) {
		t.Fatalf("a token was accepted with no secret configured: %v", err)
	}
}
