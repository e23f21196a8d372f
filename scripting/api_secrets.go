package scripting

import (
	"crypto/sha256"
	"crypto/subtle"
	"os"

	lua "github.com/yuin/gopher-lua"
)

// openSecrets installs `secrets`, which checks a value against a secret
// the operator keeps in an environment variable, without the secret ever
// reaching the script:
//
//	secrets.configured(name) -> true when the variable is set and not empty
//	secrets.equal(name, value) -> true when it is set, not empty, and equal to value
//
// The comparison takes the same time whatever value is given (both sides
// are hashed with SHA-256, the hashes compared in constant time), so a
// caller cannot learn the secret a byte at a time from how long it takes.
func (st *state) openSecrets() {
	st.setModule("secrets", map[string]lua.LGFunction{
		"configured": func(L *lua.LState) int {
			L.Push(lua.LBool(os.Getenv(L.CheckString(1)) != ""))
			return 1
		},
		"equal": func(L *lua.LState) int {
			secret := os.Getenv(L.CheckString(1))
			given := L.CheckString(2)
			L.Push(lua.LBool(secret != "" && secretsEqual(secret, given)))
			return 1
		},
	})
}

// secretsEqual compares a and b in a time that depends on neither's content.
func secretsEqual(a, b string) bool {
	ha, hb := sha256.Sum256([]byte(a)), sha256.Sum256([]byte(b))
	return subtle.ConstantTimeCompare(ha[:], hb[:]) == 1
}
