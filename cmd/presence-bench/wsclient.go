package main

import (
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"strconv"
	"sync"
	"time"
)

// wsConn is the client side of a device's WebSocket (RFC 6455), written
// for the load generator: the tool shares two cores with the server, and
// gorilla's Dialer cost it ~50 µs per connect in request building, header
// maps and response parsing. The handshake here is one write of a
// prebuilt request and one read; frames are written in one write each,
// masked as a client must; reads come from one small buffer and return
// payloads that stay valid until the next read. Every device of the tool
// uses it, against Presence and the relay alike, so the comparison is
// unchanged.
type wsConn struct {
	nc *net.TCPConn

	rbuf []byte // buffered input: rbuf[rpos:rend] is unread
	rpos int
	rend int
	msg  []byte // a fragmented message being put together

	wmu  sync.Mutex // guards: wbuf, and writes to nc
	wbuf []byte
}

// wsGUID is RFC 6455's magic string for Sec-WebSocket-Accept.
const wsGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

// wsReadBuf is each connection's input buffer: an answer or a pushed
// notification fits; larger frames grow it.
const wsReadBuf = 512

// handshakeTimeout bounds the dial, the upgrade and the connect request.
const handshakeTimeout = 10 * time.Second

// dialWS opens a WebSocket to path on the server with a fresh random key
// and checks the server's accept value.
func (d *sourceDialer) dialWS(ctx context.Context, path string) (*wsConn, error) {
	nc, err := d.dialTCP(ctx)
	if err != nil {
		return nil, err
	}
	c := &wsConn{nc: nc, rbuf: make([]byte, wsReadBuf)}
	nc.SetDeadline(time.Now().Add(handshakeTimeout))
	if err := c.handshake(d.addr, path); err != nil {
		nc.Close()
		return nil, err
	}
	return c, nil
}

func (c *wsConn) handshake(host, path string) error {
	var raw [16]byte
	binary.LittleEndian.PutUint64(raw[:8], rand.Uint64())
	binary.LittleEndian.PutUint64(raw[8:], rand.Uint64())
	var key [24]byte
	base64.StdEncoding.Encode(key[:], raw[:])

	req := make([]byte, 0, 192)
	req = append(req, "GET "...)
	req = append(req, path...)
	req = append(req, " HTTP/1.1\r\nHost: "...)
	req = append(req, host...)
	req = append(req, "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: "...)
	req = append(req, key[:]...)
	req = append(req, "\r\n\r\n"...)
	if _, err := c.nc.Write(req); err != nil {
		return err
	}

	// The answer's head, up to its blank line; what follows it is frames.
	for {
		if i := bytes.Index(c.rbuf[:c.rend], []byte("\r\n\r\n")); i >= 0 {
			head := c.rbuf[:i+2]
			c.rpos = i + 4
			return checkUpgrade(head, key[:])
		}
		if c.rend == len(c.rbuf) {
			return errors.New("bad handshake: answer head larger than the read buffer")
		}
		n, err := c.nc.Read(c.rbuf[c.rend:])
		c.rend += n
		if err != nil {
			return fmt.Errorf("bad handshake: %w", err)
		}
	}
}

// checkUpgrade checks a 101 answer's head (each line ending in CRLF) as
// RFC 6455 §4.1 asks of a client: status, Upgrade, Connection, Accept.
func checkUpgrade(head, key []byte) error {
	line, rest, _ := bytes.Cut(head, []byte("\r\n"))
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) || string(line[9:12]) != "101" {
		code := 0
		if len(line) >= 12 {
			code, _ = strconv.Atoi(string(line[9:12]))
		}
		return fmt.Errorf("bad handshake: http %d", code)
	}
	h := sha1.New()
	h.Write(key)
	h.Write([]byte(wsGUID))
	var want [28]byte
	base64.StdEncoding.Encode(want[:], h.Sum(nil))
	var upgrade, connection, accept bool
	for len(rest) > 0 {
		line, rest, _ = bytes.Cut(rest, []byte("\r\n"))
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			continue
		}
		value = bytes.TrimSpace(value)
		switch {
		case bytes.EqualFold(name, []byte("Upgrade")):
			upgrade = bytes.EqualFold(value, []byte("websocket"))
		case bytes.EqualFold(name, []byte("Connection")):
			for tok := range bytes.SplitSeq(value, []byte(",")) {
				connection = connection || bytes.EqualFold(bytes.TrimSpace(tok), []byte("upgrade"))
			}
		case bytes.EqualFold(name, []byte("Sec-WebSocket-Accept")):
			accept = bytes.Equal(value, want[:])
		}
	}
	if !upgrade || !connection || !accept {
		return fmt.Errorf("bad handshake: upgrade %v, connection %v, accept %v", upgrade, connection, accept)
	}
	return nil
}

// WebSocket opcodes (RFC 6455 §5.2).
const (
	wsContinuation = 0x0
	wsText         = 0x1
	wsBinary       = 0x2
	wsClose        = 0x8
	wsPing         = 0x9
	wsPong         = 0xA
)

// WriteText sends one text frame.
func (c *wsConn) WriteText(payload []byte) error { return c.writeFrame(wsText, payload) }

// writeFrame sends one final frame, masked with a fresh key, in one write.
func (c *wsConn) writeFrame(op byte, payload []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.wbuf = appendFrame(c.wbuf[:0], op, payload)
	_, err := c.nc.Write(c.wbuf)
	return err
}

// appendFrame appends one final client frame to b: the header, a fresh
// masking key, and payload masked with it (RFC 6455 §5.2-5.3).
func appendFrame(b []byte, op byte, payload []byte) []byte {
	b = append(b, 0x80|op)
	switch n := len(payload); {
	case n <= 125:
		b = append(b, 0x80|byte(n))
	case n <= 0xFFFF:
		b = append(b, 0x80|126, byte(n>>8), byte(n))
	default:
		b = append(b, 0x80|127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	mask := rand.Uint32()
	b = binary.LittleEndian.AppendUint32(b, mask)
	start := len(b)
	b = append(b, payload...)
	maskBytes(b[start:], mask)
	return b
}

// maskBytes XORs b with the 4-byte key (its little-endian bytes, in wire
// order), eight bytes at a time.
func maskBytes(b []byte, key uint32) {
	k8 := uint64(key) | uint64(key)<<32
	i := 0
	for ; i+8 <= len(b); i += 8 {
		binary.LittleEndian.PutUint64(b[i:], binary.LittleEndian.Uint64(b[i:])^k8)
	}
	for ; i < len(b); i++ {
		b[i] ^= byte(key >> (8 * (i % 4)))
	}
}

// errClosed is a close frame from the server; errKind files it as
// "close" and its code. A connection that ends without one is "eof".
type errClosed struct{ code int }

func (e *errClosed) Error() string { return fmt.Sprintf("websocket: close %d", e.code) }

// ReadMessage returns the next data message. Pings are answered and pongs
// skipped on the way. The payload is valid until the next ReadMessage.
func (c *wsConn) ReadMessage() (op int, payload []byte, err error) {
	for {
		fin, op, p, err := c.readFrame()
		if err != nil {
			return 0, nil, err
		}
		switch op {
		case wsPing:
			if err := c.writeFrame(wsPong, p); err != nil {
				return 0, nil, err
			}
		case wsPong:
		case wsClose:
			code := 1005
			if len(p) >= 2 {
				code = int(binary.BigEndian.Uint16(p))
			}
			return 0, nil, &errClosed{code}
		case wsText, wsBinary:
			if fin {
				return int(op), p, nil
			}
			c.msg = append(append(c.msg[:0], byte(op)), p...) // first byte: the message's opcode
		case wsContinuation:
			if c.msg == nil {
				return 0, nil, errors.New("websocket: continuation without a message")
			}
			c.msg = append(c.msg, p...)
			if fin {
				m := c.msg
				c.msg = nil
				return int(m[0]), m[1:], nil
			}
		default:
			return 0, nil, fmt.Errorf("websocket: unknown opcode %d", op)
		}
	}
}

// readFrame reads one frame from the buffer, filling it as needed.
func (c *wsConn) readFrame() (fin bool, op byte, payload []byte, err error) {
	if err := c.fill(2); err != nil {
		return false, 0, nil, err
	}
	b0, b1 := c.rbuf[c.rpos], c.rbuf[c.rpos+1]
	if b1&0x80 != 0 {
		return false, 0, nil, errors.New("websocket: masked frame from the server")
	}
	head, n := 2, int(b1&0x7F)
	switch n {
	case 126:
		head = 4
	case 127:
		head = 10
	}
	if err := c.fill(head); err != nil {
		return false, 0, nil, err
	}
	switch head {
	case 4:
		n = int(binary.BigEndian.Uint16(c.rbuf[c.rpos+2:]))
	case 10:
		n64 := binary.BigEndian.Uint64(c.rbuf[c.rpos+2:])
		if n64 > 1<<24 {
			return false, 0, nil, fmt.Errorf("websocket: frame of %d bytes", n64)
		}
		n = int(n64)
	}
	if err := c.fill(head + n); err != nil {
		return false, 0, nil, err
	}
	payload = c.rbuf[c.rpos+head : c.rpos+head+n]
	c.rpos += head + n
	return b0&0x80 != 0, b0 & 0x0F, payload, nil
}

// fill makes n unread bytes available at rbuf[rpos:], moving what is
// unread to the front and growing the buffer when it must.
func (c *wsConn) fill(n int) error {
	if c.rend-c.rpos >= n {
		return nil
	}
	if c.rpos+n > len(c.rbuf) {
		if n > len(c.rbuf) {
			nb := make([]byte, max(n, 2*len(c.rbuf)))
			c.rend = copy(nb, c.rbuf[c.rpos:c.rend])
			c.rbuf = nb
		} else {
			c.rend = copy(c.rbuf, c.rbuf[c.rpos:c.rend])
		}
		c.rpos = 0
	}
	for c.rend-c.rpos < n {
		m, err := c.nc.Read(c.rbuf[c.rend:])
		c.rend += m
		if err != nil {
			if err == io.EOF && c.rend-c.rpos > 0 {
				err = io.ErrUnexpectedEOF
			}
			return err
		}
	}
	return nil
}

// SetReadDeadline, SetWriteDeadline, SetDeadline and Close are the
// socket's.
func (c *wsConn) SetReadDeadline(t time.Time) error  { return c.nc.SetReadDeadline(t) }
func (c *wsConn) SetWriteDeadline(t time.Time) error { return c.nc.SetWriteDeadline(t) }
func (c *wsConn) SetDeadline(t time.Time) error      { return c.nc.SetDeadline(t) }
func (c *wsConn) Close() error                       { return c.nc.Close() }
