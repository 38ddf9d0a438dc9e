package wsframe

import "unicode/utf8"

// utf8Checker validates UTF-8 that arrives in pieces (a text message split
// over frames and reads): a rune cut at a piece's end is kept until the
// next piece completes it.
type utf8Checker struct {
	tail  [utf8.UTFMax]byte
	nTail uint8
}

// write checks p; false means the text can no longer be valid UTF-8.
func (u *utf8Checker) write(p []byte) bool {
	if u.nTail > 0 {
		need := uint8(runeLen(u.tail[0]))
		for u.nTail < need && len(p) > 0 {
			u.tail[u.nTail] = p[0]
			u.nTail++
			p = p[1:]
			if !validPrefix(u.tail[:u.nTail]) {
				return false
			}
		}
		if u.nTail < need {
			return true // still incomplete: p ran out
		}
		if !utf8.Valid(u.tail[:u.nTail]) {
			return false
		}
		u.nTail = 0
	}
	// Keep an incomplete rune at the end for the next piece.
	cut := len(p)
	for i := len(p) - 1; i >= 0 && i >= len(p)-(utf8.UTFMax-1); i-- {
		c := p[i]
		if c < utf8.RuneSelf {
			break
		}
		if c >= 0xC0 { // a leading byte
			if n := runeLen(c); n > 0 && len(p)-i < n {
				cut = i
			}
			break
		}
	}
	if !utf8.Valid(p[:cut]) {
		return false
	}
	if cut < len(p) {
		u.nTail = uint8(copy(u.tail[:], p[cut:]))
		return validPrefix(u.tail[:u.nTail])
	}
	return true
}

// complete reports whether the text ended on a rune boundary.
func (u *utf8Checker) complete() bool { return u.nTail == 0 }

// runeLen is the length of the rune a leading byte starts (0: not a valid
// leading byte).
func runeLen(c byte) int {
	switch {
	case c >= 0xC2 && c <= 0xDF:
		return 2
	case c >= 0xE0 && c <= 0xEF:
		return 3
	case c >= 0xF0 && c <= 0xF4:
		return 4
	}
	return 0
}

// validPrefix reports whether b (a leading byte and fewer continuation
// bytes than the rune needs) can still become a valid rune, so an invalid
// sequence fails as soon as it is seen (RFC 6455 8.1: fail fast).
func validPrefix(b []byte) bool {
	if len(b) == 0 {
		return true
	}
	if runeLen(b[0]) == 0 {
		return false
	}
	for i := 1; i < len(b); i++ {
		c := b[i]
		lo, hi := byte(0x80), byte(0xBF)
		if i == 1 {
			switch b[0] {
			case 0xE0:
				lo = 0xA0
			case 0xED:
				hi = 0x9F
			case 0xF0:
				lo = 0x90
			case 0xF4:
				hi = 0x8F
			}
		}
		if c < lo || c > hi {
			return false
		}
	}
	return true
}
