package netpoll

import (
	"crypto/sha1"
	"encoding/base64"
	"net"
	"time"
)

// acceptGUID is RFC 6455's magic string for Sec-WebSocket-Accept.
const acceptGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

const switching = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: "

// WriteAccept writes the 101 answer to an opening handshake whose
// Sec-WebSocket-Key is key (RFC 6455 §4.2.2), and closes nc if it cannot.
// The caller has checked the rest of the request.
func WriteAccept(nc net.Conn, key []byte) bool {
	var in [24 + len(acceptGUID)]byte
	if !ValidKey(key) {
		nc.Close()
		return false
	}
	copy(in[copy(in[:], key):], acceptGUID)
	h := sha1.Sum(in[:])
	var out [len(switching) + 28 + 4]byte
	b := append(out[:0], switching...)
	b = base64.StdEncoding.AppendEncode(b, h[:])
	b = append(b, "\r\n\r\n"...)
	nc.SetWriteDeadline(time.Now().Add(WriteWait))
	if _, err := nc.Write(b); err != nil {
		nc.Close()
		return false
	}
	nc.SetDeadline(time.Time{})
	return true
}

// ValidKey reports whether k is a Sec-WebSocket-Key: 16 bytes, base64.
func ValidKey(k []byte) bool {
	var b [18]byte // 24 characters decode to at most 18 bytes
	if len(k) != 24 {
		return false
	}
	n, err := base64.StdEncoding.Decode(b[:], k)
	return err == nil && n == 16
}
