// Package auth signs clients in before the upgrade: it verifies an HS256
// JWT given as ?token= or an Authorization: Bearer header, and hands its
// claims to the service.
package auth

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/moongate/moongate/gateway/config"
)

// leeway tolerates small clock differences when checking exp and nbf.
const leeway = 5 * time.Second

// Verifier checks the tokens of one endpoint's clients.
type Verifier struct {
	secret    []byte // empty: the secret variable is not set, no token can be valid
	secretEnv string
	required  bool
	parser    *jwt.Parser
}

// NewVerifier returns the verifier for cfg, reading the secret from the
// environment variable it names. A missing secret is an error only when
// sign-in is required.
func NewVerifier(cfg *config.Auth) (*Verifier, error) {
	secret := os.Getenv(cfg.SecretEnv)
	if secret == "" && cfg.Required {
		return nil, fmt.Errorf("auth.required is true but %s is not set: no token could be verified", cfg.SecretEnv)
	}
	return &Verifier{
		secret:    []byte(secret),
		secretEnv: cfg.SecretEnv,
		required:  cfg.Required,
		parser:    jwt.NewParser(jwt.WithValidMethods([]string{"HS256"}), jwt.WithExpirationRequired(), jwt.WithLeeway(leeway)),
	}, nil
}

// Enabled reports whether tokens can be verified at all.
func (v *Verifier) Enabled() bool { return len(v.secret) > 0 }

// Rejection is why a request's sign-in failed: the upgrade is refused with
// 401 and Reason.
type Rejection struct{ Reason string }

func (r *Rejection) Error() string { return r.Reason }

// Verify returns the claims of the request's token, nil claims for a guest
// (no token, where guests are allowed), or a *Rejection.
func (v *Verifier) Verify(r *http.Request) (map[string]any, error) {
	raw := tokenOf(r)
	switch {
	case raw == "" && v.required:
		return nil, &Rejection{"sign-in required: give a token as ?token= or Authorization: Bearer"}
	case raw == "":
		return nil, nil
	case !v.Enabled():
		return nil, &Rejection{"sign-in is not configured on this server (" + v.secretEnv + " is not set)"}
	}
	claims := jwt.MapClaims{}
	_, err := v.parser.ParseWithClaims(raw, claims, func(*jwt.Token) (any, error) { return v.secret, nil })
	if err != nil {
		return nil, &Rejection{describe(err)}
	}
	return claims, nil
}

// describe turns a jwt error into a short reason for the client.
func describe(err error) string {
	switch {
	case errors.Is(err, jwt.ErrTokenExpired):
		return "token expired"
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		return "token not valid yet"
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return "token signature invalid"
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return "token has no exp claim"
	case errors.Is(err, jwt.ErrTokenMalformed):
		return "token malformed"
	}
	return "token invalid: " + err.Error()
}

// tokenOf returns the token of a request: ?token= first, then the
// Authorization: Bearer header.
func tokenOf(r *http.Request) string {
	if t := r.URL.Query().Get("token"); t != "" {
		return t
	}
	if h := r.Header.Get("Authorization"); len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
		return strings.TrimSpace(h[7:])
	}
	return ""
}

// Sign returns an HS256 token for sub and name that expires after ttl, with
// any extra claims. It is what `moongate token` prints.
func Sign(secret []byte, sub, name string, ttl time.Duration, extra map[string]any) (string, error) {
	now := time.Now()
	claims := jwt.MapClaims{"sub": sub, "iat": now.Unix(), "exp": now.Add(ttl).Unix()}
	if name != "" {
		claims["name"] = name
	}
	for k, v := range extra {
		claims[k] = v
	}
	return jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(secret)
}
