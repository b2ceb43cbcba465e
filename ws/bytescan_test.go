package ws

import (
	"bytes"
	"strings"
	"testing"
)

// The word-at-a-time checks agree with the byte-by-byte ones on any
// input: isFieldValue with its table, sameBytes with bytes.Equal.
func FuzzBytescan(f *testing.F) {
	f.Add([]byte("Bearer 3q2+7w"), []byte("Bearer 3q2+7w"))
	f.Add([]byte("abcdefgh\x7fijklmnop"), []byte("abcdefgh\x7fijklmnoq"))
	f.Add([]byte("a\tb\x1fc\x80\xff\x20\x7e"), []byte{})
	f.Fuzz(func(t *testing.T, a, b []byte) {
		for _, v := range [][]byte{a, b} {
			if got, want := isFieldValue(v), isFieldValueBytes(v); got != want {
				t.Fatalf("isFieldValue(%q) = %v, byte by byte %v", v, got, want)
			}
		}
		if got, _ := sameBytes(a, b, nil); got != bytes.Equal(a, b) {
			t.Fatalf("sameBytes(%q, %q) = %v", a, b, got)
		}
	})
}

// Every control byte is caught in every position of a word, and the
// bytes around it (obs-text included) do not hide it.
func TestIsFieldValueFindsEachControlByte(t *testing.T) {
	for c := range 256 {
		for pos := range 17 {
			v := []byte(strings.Repeat("\xffA~ ", 5)[:17])
			v[pos] = byte(c)
			if got, want := isFieldValue(v), c >= ' ' && c != 0x7F || c == '\t'; got != want {
				t.Fatalf("byte %#x at %d: %v, want %v", c, pos, got, want)
			}
		}
	}
}

var fullKey = []byte("Bearer " + strings.Repeat("k", 1024))

func BenchmarkIsFieldValueFullKey(b *testing.B) {
	for b.Loop() {
		if !isFieldValue(fullKey) {
			b.Fatal("refused")
		}
	}
}

func BenchmarkSameBytesFullKey(b *testing.B) {
	other := bytes.Clone(fullKey)
	var scratch []byte
	var same bool
	for b.Loop() {
		if same, scratch = sameBytes(fullKey, other, scratch); !same {
			b.Fatal("differ")
		}
	}
}
