package xmpp

import (
	"bufio"
	"net"
	"time"

	"mellium.im/xmpp/stream"
)

// guardConn sits between the socket and mellium's XML decoder. It scans
// every byte the decoder consumes with a small XML lexer, so that limits
// hold before the decoder buffers anything:
//
//   - a stanza (or the stream header) over maxItem bytes,
//   - a DTD, comment or processing instruction (other than the XML
//     declaration before the stream header),
//   - an entity reference other than the five predefined ones and
//     character references,
//
// each end the stream with policy-violation. encoding/xml never expands
// entities from a DTD, but it would buffer an unbounded token, and a
// DOCTYPE is never legitimate in XMPP (RFC 6120 §11.1): refusing it here
// gives one clear error for the whole "XML bomb" family.
//
// It implements io.ByteReader, which encoding/xml uses instead of adding
// its own bufio.Reader: the lexer then sees exactly the bytes the decoder
// consumes, with no read-ahead to account for.
//
// Whitespace between stanzas (keepalives) is swallowed here and never
// reaches the decoder, which would otherwise keep it in one growing text
// token until the next stanza.
//
// Every Write sets a write deadline first, so that no writer (handler
// answers, the status writer, stream close) can block forever on a peer
// that stopped reading.
type guardConn struct {
	net.Conn
	r            *bufio.Reader
	scan         scanner
	writeTimeout time.Duration

	// onViolation, once the session is up, writes the stream error
	// before the decoder sees it (see conn.endStream for why mellium
	// must not be the one to write it).
	onViolation func(stream.Error)
}

func newGuardConn(c net.Conn, maxItem int, writeTimeout time.Duration) *guardConn {
	return &guardConn{Conn: c, r: bufio.NewReaderSize(c, 4096), scan: scanner{max: maxItem}, writeTimeout: writeTimeout}
}

// ReadByte returns the next byte the lexer lets through.
func (g *guardConn) ReadByte() (byte, error) {
	for {
		if g.scan.err != nil {
			return 0, g.scan.err
		}
		b, err := g.r.ReadByte()
		if err != nil {
			return 0, err
		}
		pass, err := g.scan.step(b)
		if err != nil {
			if g.onViolation != nil {
				g.onViolation(g.scan.err.(stream.Error))
			}
			return 0, err
		}
		if pass {
			return b, nil
		}
	}
}

// Read fills p with what is buffered (at least one byte, blocking for
// it), through the lexer. The decoder uses ReadByte; Read exists for
// anything else that reads the session's conn.
func (g *guardConn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	n := 0
	for n < len(p) {
		if n > 0 && g.r.Buffered() == 0 {
			break
		}
		b, err := g.ReadByte()
		if err != nil {
			if n > 0 {
				return n, nil
			}
			return 0, err
		}
		p[n] = b
		n++
	}
	return n, nil
}

// Write writes under a fresh write deadline.
func (g *guardConn) Write(p []byte) (int, error) {
	if g.writeTimeout > 0 {
		if err := g.Conn.SetWriteDeadline(time.Now().Add(g.writeTimeout)); err != nil {
			return 0, err
		}
	}
	return g.Conn.Write(p)
}

// policyViolation is a stream error with a reason in its text.
func policyViolation(text string) stream.Error {
	return withText(stream.PolicyViolation, text)
}

// withText adds a human-readable text to a stream error.
func withText(e stream.Error, text string) stream.Error {
	e.Text = append(e.Text, struct {
		Lang  string
		Value string
	}{Value: text})
	return e
}
