package outbound_test

import (
	"testing"

	"github.com/moongate/moongate/gateway/config"
	"github.com/moongate/moongate/gateway/outbound"
)

// An endpoint's `http:` section converts to a Policy, and the defaults agree.
func TestPolicyConvertsFromConfig(t *testing.T) {
	ep := config.HTTP{Allow: []string{"https://api.example.com/v1"}, Timeout: config.DefaultHTTPTimeout,
		MaxResponseBytes: config.DefaultMaxResponseBytes}
	p := outbound.Policy(ep)
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	if !outbound.New(p).Allowed("https://api.example.com/v1/users") {
		t.Fatal("the converted policy does not allow what it lists")
	}
	if config.DefaultHTTPTimeout != outbound.DefaultTimeout || config.DefaultMaxResponseBytes != outbound.DefaultMaxResponseBytes {
		t.Fatal("the defaults of config and outbound differ")
	}
}
