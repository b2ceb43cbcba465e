package netpoll

import (
	"bytes"
	"errors"
	"testing"
)

// clientFrame builds a masked frame as a browser would send it.
func clientFrame(fin bool, op byte, payload []byte) []byte {
	b0 := op
	if fin {
		b0 |= 0x80
	}
	b := []byte{b0}
	switch n := len(payload); {
	case n < 126:
		b = append(b, 0x80|byte(n))
	case n <= 0xFFFF:
		b = append(b, 0x80|126, byte(n>>8), byte(n))
	default:
		b = append(b, 0x80|127, 0, 0, 0, 0, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
	key := []byte{0x12, 0x34, 0x56, 0x78}
	b = append(b, key...)
	for i, c := range payload {
		b = append(b, c^key[i&3])
	}
	return b
}

func TestParseFrame(t *testing.T) {
	long := bytes.Repeat([]byte("x"), 300)
	for _, tc := range []struct {
		name string
		in   []byte
		op   byte
		want []byte
	}{
		{"short text", clientFrame(true, opText, []byte(`{"type":"ping"}`)), opText, []byte(`{"type":"ping"}`)},
		{"16-bit length", clientFrame(true, opText, long), opText, long},
		{"empty ping", clientFrame(true, opPing, nil), opPing, []byte{}},
	} {
		f, n, err := parseFrame(tc.in, 4096)
		if err != nil || n != len(tc.in) || f.op != tc.op || !f.fin || !bytes.Equal(f.payload, tc.want) {
			t.Errorf("%s: op %d fin %v payload %q n %d err %v", tc.name, f.op, f.fin, f.payload, n, err)
		}
	}
	// Every prefix of a frame is incomplete, never an error.
	whole := clientFrame(true, opText, long)
	for i := range len(whole) {
		if _, _, err := parseFrame(append([]byte(nil), whole[:i]...), 4096); err != errIncomplete {
			t.Fatalf("prefix of %d bytes: %v, want incomplete", i, err)
		}
	}
}

func TestParseFrameRefuses(t *testing.T) {
	unmasked := []byte{0x81, 0x02, 'h', 'i'}
	for _, tc := range []struct {
		name string
		in   []byte
		code int
	}{
		{"unmasked", unmasked, closeProtocolError},
		{"reserved bits", append([]byte{0xC1}, clientFrame(true, opText, nil)[1:]...), closeProtocolError},
		{"unknown opcode", clientFrame(true, 0x3, nil), closeProtocolError},
		{"fragmented ping", clientFrame(false, opPing, nil), closeProtocolError},
		{"long control frame", clientFrame(true, opPong, bytes.Repeat([]byte("p"), 126)), closeProtocolError},
		{"over the limit", clientFrame(true, opText, bytes.Repeat([]byte("x"), 4097)), closeTooBig},
		{"64-bit length over the limit", clientFrame(true, opText, bytes.Repeat([]byte("x"), 70000)), closeTooBig},
	} {
		_, _, err := parseFrame(tc.in, 4096)
		var pe *protocolError
		if !errors.As(err, &pe) || pe.code != tc.code {
			t.Errorf("%s: %v, want close %d", tc.name, err, tc.code)
		}
	}
}

func TestEncodeFrameHeaders(t *testing.T) {
	for _, n := range []int{0, 125, 126, 65535, 65536} {
		f := encodeFrame(opText, make([]byte, n))
		hdr := len(f) - n
		want := map[bool]int{true: 2}[n < 126]
		if n >= 126 && n <= 0xFFFF {
			want = 4
		} else if n > 0xFFFF {
			want = 10
		}
		if f[0] != 0x81 || hdr != want {
			t.Errorf("payload %d: first byte %#x, header %d bytes, want 0x81 and %d", n, f[0], hdr, want)
		}
	}
	c := encodeClose(1009, "too big")
	if c[0] != 0x88 || c[2] != 0x03 || c[3] != 0xF1 || string(c[4:]) != "too big" {
		t.Errorf("close frame % x", c)
	}
}

// parseFrame never panics, never reads past its input, and what it
// accepts fits within the limit. A frame marked unmasked after it was
// parsed parses again to the same frame (the collector's held frames).
func FuzzParseFrame(f *testing.F) {
	f.Add(clientFrame(true, opText, []byte(`{"type":"ping"}`)))
	f.Add(clientFrame(false, opContinuation, []byte("abc")))
	f.Add([]byte{0x81, 0xFF, 0, 0, 0, 0, 0, 0, 0, 5})
	f.Fuzz(func(t *testing.T, b []byte) {
		fr, n, err := parseFrame(b, 4096)
		if err != nil {
			return
		}
		if n > len(b) || len(fr.payload) > 4096 {
			t.Fatalf("n %d of %d, payload %d", n, len(b), len(fr.payload))
		}
		payload := bytes.Clone(fr.payload)
		markUnmasked(b, n, fr)
		again, m, err := parseFrame(b, 4096)
		if err != nil || m != n || again.fin != fr.fin || again.op != fr.op || !bytes.Equal(again.payload, payload) {
			t.Fatalf("parsed again: %+v %d %v, want %+v %d", again, m, err, fr, n)
		}
	})
}
