package main

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
)

// The address file tells `moongate reload -config F` where the gateway
// serving F listens, which is not the config's listen when -listen
// overrode it: a running gateway writes the address it listens on to a
// file named after its config file's absolute path, in the user's runtime
// folder ($XDG_RUNTIME_DIR, else the temporary folder), and removes it on
// exit.

// addrFile returns the path of the address file for the config at path.
func addrFile(path string) string {
	abs, err := filepath.Abs(path)
	if err != nil {
		abs = path
	}
	sum := sha256.Sum256([]byte(abs))
	dir := os.Getenv("XDG_RUNTIME_DIR")
	if dir == "" {
		dir = os.TempDir()
	}
	return filepath.Join(dir, "moongate-"+hex.EncodeToString(sum[:8])+".addr")
}

// writeAddr records that the gateway serving the config at path listens
// on addr, and returns how to remove the record.
func writeAddr(path, addr string) (remove func(), err error) {
	file := addrFile(path)
	if err := os.WriteFile(file, []byte(addr+"\n"), 0o600); err != nil {
		return func() {}, err
	}
	return func() { os.Remove(file) }, nil
}

// readAddr returns the address a running gateway recorded for the config
// at path, or "" when there is none.
func readAddr(path string) string {
	b, err := os.ReadFile(addrFile(path))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}
