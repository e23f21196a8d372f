package wsproto

import "unicode/utf8"

// utf8Validator checks UTF-8 that arrives in pieces. It fails as soon as a
// byte makes the text invalid, including in the middle of a sequence that
// is split across frames, instead of after the whole message is buffered.
type utf8Validator struct {
	pending [utf8.UTFMax]byte
	n       int
}

// reset forgets any partial sequence.
func (v *utf8Validator) reset() { v.n = 0 }

// complete reports whether the text so far ends on a rune boundary.
func (v *utf8Validator) complete() bool { return v.n == 0 }

// write validates the next piece of text and reports whether it is still valid.
func (v *utf8Validator) write(p []byte) bool {
	for v.n > 0 && len(p) > 0 {
		v.pending[v.n] = p[0]
		v.n++
		p = p[1:]
		if !validPrefix(v.pending[:v.n]) {
			return false
		}
		if v.n == seqLen(v.pending[0]) {
			v.n = 0
		}
	}
	if v.n > 0 { // p ended inside the pending sequence
		return true
	}
	tail := incompleteTail(p)
	body := p[:len(p)-tail]
	if !utf8.Valid(body) {
		return false
	}
	rest := p[len(body):]
	if !validPrefix(rest) {
		return false
	}
	v.n = copy(v.pending[:], rest)
	return true
}

// seqLen returns the length of the sequence that lead starts, or 1 for a
// byte that cannot start one (which utf8.Valid then rejects).
func seqLen(lead byte) int {
	switch {
	case lead >= 0xC2 && lead <= 0xDF:
		return 2
	case lead >= 0xE0 && lead <= 0xEF:
		return 3
	case lead >= 0xF0 && lead <= 0xF4:
		return 4
	default:
		return 1
	}
}

// incompleteTail returns how many bytes at the end of p start a multi-byte
// sequence that p does not finish.
func incompleteTail(p []byte) int {
	for i := len(p) - 1; i >= 0 && i >= len(p)-utf8.UTFMax+1; i-- {
		if p[i]&0xC0 != 0x80 { // a lead byte
			if need := seqLen(p[i]); need > 1 && len(p)-i < need {
				return len(p) - i
			}
			return 0
		}
	}
	return 0
}

// validPrefix reports whether p (shorter than its sequence) can still be
// completed into a valid sequence: it checks the second byte's narrower
// ranges (no overlongs, no surrogates, nothing above U+10FFFF).
func validPrefix(p []byte) bool {
	if len(p) == 0 {
		return true
	}
	if seqLen(p[0]) == 1 && len(p) > 0 {
		return p[0] < 0x80 && len(p) == 1
	}
	for i, b := range p[1:] {
		lo, hi := byte(0x80), byte(0xBF)
		if i == 0 {
			lo, hi = secondByteRange(p[0])
		}
		if b < lo || b > hi {
			return false
		}
	}
	return true
}

// secondByteRange returns the allowed range of the byte after lead.
func secondByteRange(lead byte) (lo, hi byte) {
	switch lead {
	case 0xE0:
		return 0xA0, 0xBF
	case 0xED:
		return 0x80, 0x9F
	case 0xF0:
		return 0x90, 0xBF
	case 0xF4:
		return 0x80, 0x8F
	default:
		return 0x80, 0xBF
	}
}
