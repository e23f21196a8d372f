package client

import (
	"encoding/base64"
	"testing"
)

func TestIDsAreUnguessable(t *testing.T) {
	seen := map[string]bool{}
	prev := NewID()
	for range 10_000 {
		id := NewID()
		if seen[id] {
			t.Fatalf("id %s given twice", id)
		}
		seen[id] = true
		if b, err := base64.RawURLEncoding.DecodeString(id); err != nil || len(b) != 16 {
			t.Fatalf("id %q is not 16 bytes in base64url: %v", id, err)
		}
		// Consecutive ids share no more than chance allows: a common
		// prefix of 8 characters (48 bits) would mean a counter.
		n := 0
		for n < len(id) && id[n] == prev[n] {
			n++
		}
		if n >= 8 {
			t.Fatalf("consecutive ids %s and %s share %d leading characters", prev, id, n)
		}
		prev = id
	}
}
