package ws

import (
	"crypto/subtle"
	"encoding/binary"
)

// The front door checks every byte of each POST's Authorization header,
// a 1,024-character key (PROTOCOL §5), twice: that it is a valid field
// value, and that it is the key the connection proved. Byte by byte that
// was about 5 % of the server's CPU per single-item POST (perf, sixth
// session); these do it a word or a vector at a time.

const (
	ones  = 0x0101010101010101
	highs = 0x8080808080808080
)

// mayHoldControl reports whether any byte of w may be below 0x20 or be
// 0x7F: never false when one is (it may be true when none is).
func mayHoldControl(w uint64) bool {
	below := (w - ones*0x20) &^ w & highs                      // a byte < 0x20 sets its high bit here
	del := ((w ^ ones*0x7F) - ones) &^ (w ^ ones*0x7F) & highs // a 0x7F byte became 0
	return below|del != 0
}

// isFieldValue reports whether b holds no control character but tab.
// Words that might hold one are checked byte by byte.
func isFieldValue(b []byte) bool {
	for len(b) >= 8 {
		if mayHoldControl(binary.LittleEndian.Uint64(b)) && !isFieldValueBytes(b[:8]) {
			return false
		}
		b = b[8:]
	}
	return isFieldValueBytes(b)
}

func isFieldValueBytes(b []byte) bool {
	for _, c := range b {
		if !fieldValueChar[c] {
			return false
		}
	}
	return true
}

// sameBytes reports whether a and b are equal, in time that depends on
// their lengths only (lengths are not secret), using scratch (grown as
// needed, and returned) for their XOR.
func sameBytes(a, b, scratch []byte) (bool, []byte) {
	if len(a) != len(b) {
		return false, scratch
	}
	if cap(scratch) < len(a) {
		scratch = make([]byte, len(a))
	}
	x := scratch[:len(a)]
	subtle.XORBytes(x, a, b)
	var diff uint64
	for len(x) >= 8 {
		diff |= binary.LittleEndian.Uint64(x)
		x = x[8:]
	}
	for _, c := range x {
		diff |= uint64(c)
	}
	return diff == 0, scratch
}
