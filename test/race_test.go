//go:build race

package test

// raceEnabled builds the binary under test with the race detector too.
const raceEnabled = true
