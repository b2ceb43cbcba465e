package netpoll

import (
	"encoding/binary"
	"errors"
)

// WebSocket opcodes (RFC 6455 §5.2).
const (
	opContinuation = 0x0
	opText         = 0x1
	opBinary       = 0x2
	opClose        = 0x8
	opPing         = 0x9
	opPong         = 0xA
)

// Close codes (RFC 6455 §7.4.1) a Conn sends on its own.
const (
	closeNormal        = 1000
	closeProtocolError = 1002
	closeTooBig        = 1009
)

// frame is one parsed client frame; payload is unmasked in place and
// aliases the read buffer.
type frame struct {
	fin     bool
	op      byte
	payload []byte
}

// protocolError ends the connection with a close code.
type protocolError struct {
	code   int
	reason string
}

func (e *protocolError) Error() string { return e.reason }

var errIncomplete = errors.New("incomplete frame")

// parseFrame reads one client frame from the front of b. It returns
// errIncomplete when b holds only part of it (read more and try again),
// and a *protocolError for what RFC 6455 forbids a client to send or for a
// payload over maxPayload. The payload is unmasked in place.
func parseFrame(b []byte, maxPayload int) (f frame, n int, err error) {
	if len(b) < 2 {
		return f, 0, errIncomplete
	}
	b0, b1 := b[0], b[1]
	if b0&0x70 != 0 {
		return f, 0, &protocolError{closeProtocolError, "reserved bits set"}
	}
	f.fin = b0&0x80 != 0
	f.op = b0 & 0x0F
	switch f.op {
	case opContinuation, opText, opBinary:
	case opClose, opPing, opPong:
		if !f.fin {
			return f, 0, &protocolError{closeProtocolError, "fragmented control frame"}
		}
	default:
		return f, 0, &protocolError{closeProtocolError, "unknown opcode"}
	}
	if b1&0x80 == 0 {
		return f, 0, &protocolError{closeProtocolError, "client frame not masked"}
	}
	length := uint64(b1 & 0x7F)
	n = 2
	switch length {
	case 126:
		if len(b) < 4 {
			return f, 0, errIncomplete
		}
		length = uint64(binary.BigEndian.Uint16(b[2:]))
		n = 4
	case 127:
		if len(b) < 10 {
			return f, 0, errIncomplete
		}
		length = binary.BigEndian.Uint64(b[2:])
		n = 10
	}
	if f.op >= opClose && length > 125 {
		return f, 0, &protocolError{closeProtocolError, "control frame too long"}
	}
	if length > uint64(maxPayload) {
		return f, 0, &protocolError{closeTooBig, "frame too large"}
	}
	if len(b) < n+4 {
		return f, 0, errIncomplete
	}
	key := b[n : n+4]
	n += 4
	end := n + int(length)
	if len(b) < end {
		return f, 0, errIncomplete
	}
	f.payload = b[n:end]
	for i := range f.payload {
		f.payload[i] ^= key[i&3]
	}
	return f, end, nil
}

// markUnmasked zeroes the masking key of f, the frame parseFrame just
// read from b[:n]. parseFrame unmasks the payload in place, so a frame
// kept to be parsed again (one left for a goroutine that may wait) must
// not be unmasked twice: with a zero key it parses as it now is.
func markUnmasked(b []byte, n int, f frame) {
	start := n - len(f.payload)
	clear(b[start-4 : start])
}

// appendFrameHeader appends the header of an unmasked server frame.
func appendFrameHeader(b []byte, op byte, length int) []byte {
	b = append(b, 0x80|op)
	switch {
	case length < 126:
		b = append(b, byte(length))
	case length <= 0xFFFF:
		b = append(b, 126, byte(length>>8), byte(length))
	default:
		b = append(b, 127)
		b = binary.BigEndian.AppendUint64(b, uint64(length))
	}
	return b
}

// encodeFrame returns a whole server frame.
func encodeFrame(op byte, payload []byte) []byte {
	b := make([]byte, 0, len(payload)+10)
	b = appendFrameHeader(b, op, len(payload))
	return append(b, payload...)
}

// encodeClose returns a close frame with code and reason (cut to fit the
// 125 bytes of a control frame).
func encodeClose(code int, reason string) []byte {
	if len(reason) > 123 {
		reason = reason[:123]
	}
	p := make([]byte, 2, 2+len(reason))
	binary.BigEndian.PutUint16(p, uint16(code))
	return encodeFrame(opClose, append(p, reason...))
}
