package jetstream

import (
	"cmp"
	"strings"
	"testing"
)

// The parsers of what the streams hold: notification ids (from devices'
// acks), subjects (from the stream's subject list), and the messages
// themselves. Any NATS client of the account can write to the streams'
// subjects, and any device can send any id. These targets need no NATS
// server: they test the pure functions.

// FuzzParseID: parseID never panics, and accepts only what notificationID
// makes: the id it accepts is the one notificationID writes for its
// sequence and nonce.
func FuzzParseID(f *testing.F) {
	for _, id := range []string{
		notificationID(1, "0123456789abcdef0123456789abcdef"),
		notificationID(1<<64-1, "ffffffffffffffffffffffffffffffff"),
		"0000000000000001", "0000000000000000abc", "000000000000000Aabc", " 000000000000001abc",
		"+000000000000001abc", "1zzzzzzzzzzzzzzzabc", "0x00000000000001abc", "", "é0000000000000001",
	} {
		f.Add(id)
	}
	f.Fuzz(func(t *testing.T, id string) {
		seq, nonce, ok := parseID(id)
		if !ok {
			return
		}
		if seq == 0 || nonce == "" {
			t.Fatalf("parseID(%q) = %d, %q, true", id, seq, nonce)
		}
		if back := notificationID(seq, nonce); back != id {
			t.Fatalf("parseID(%q) = %d, %q: notificationID makes %q of them", id, seq, nonce, back)
		}
	})
}

// FuzzNotificationID: every id notificationID makes parses back to its
// sequence and nonce, and ids compare as their sequences do (pending.go
// sorts by id to sort by sequence).
func FuzzNotificationID(f *testing.F) {
	f.Add(uint64(1), uint64(2), "0123456789abcdef0123456789abcdef")
	f.Add(uint64(15), uint64(16), "x")
	f.Add(uint64(1<<64-1), uint64(1<<63), "\xff")
	f.Fuzz(func(t *testing.T, a, b uint64, nonce string) {
		if a == 0 || nonce == "" {
			return // never made: sequences start at 1, nonces are random
		}
		id := notificationID(a, nonce)
		seq, back, ok := parseID(id)
		if !ok || seq != a || back != nonce {
			t.Fatalf("parseID(notificationID(%d, %q) = %q) = %d, %q, %v", a, nonce, id, seq, back, ok)
		}
		if b == 0 {
			return
		}
		if c := strings.Compare(id, notificationID(b, nonce)); c != cmp.Compare(a, b) {
			t.Fatalf("ids of %d and %d compare as %d", a, b, c)
		}
	})
}
