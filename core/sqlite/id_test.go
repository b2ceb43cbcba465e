package sqlite

import (
	"regexp"
	"strings"
	"testing"
)

// idShape is the documented form of an id (newID).
var idShape = regexp.MustCompile(`^[0-9a-f]{12}[A-Za-z0-9_-]{22}$`)

// TestID_CarriesSeq: every id names its seq, and only ids of that shape
// name one.
func TestID_CarriesSeq(t *testing.T) {
	for _, seq := range []int64{1, 255, 1 << 40, 1<<48 - 1} {
		id := newID(seq)
		if !idShape.MatchString(id) {
			t.Fatalf("newID(%d) = %q: want 12 hex digits, then 22 URL-safe base64 characters", seq, id)
		}
		if got, ok := seqOfID(id); !ok || got != seq {
			t.Fatalf("seqOfID(newID(%d)) = %d, %v", seq, got, ok)
		}
		if newID(seq) == id {
			t.Fatalf("two ids of seq %d are the same: the random part is missing", seq)
		}
	}
	for _, bad := range []string{"", "x", strings.Repeat("z", idLen), "00000000000g" + strings.Repeat("A", 22), newID(5) + "A"} {
		if seq, ok := seqOfID(bad); ok {
			t.Fatalf("seqOfID(%q) = %d, want no seq", bad, seq)
		}
	}
}

// FuzzSeqOfID: ack ids come from devices; whatever they send, seqOfID
// neither panics nor names a seq outside the 48 bits newID writes.
func FuzzSeqOfID(f *testing.F) {
	f.Add(newID(42))
	f.Add("")
	f.Add(strings.Repeat("f", idLen))
	f.Fuzz(func(t *testing.T, id string) {
		seq, ok := seqOfID(id)
		if ok && (seq < 0 || seq >= 1<<48 || len(id) != idLen) {
			t.Fatalf("seqOfID(%q) = %d", id, seq)
		}
	})
}
