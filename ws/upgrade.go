package ws

import (
	"crypto/sha1"
	"encoding/base64"
	"net"
	"net/http"
	"strings"
	"time"
)

// acceptGUID is RFC 6455's magic string for Sec-WebSocket-Accept.
const acceptGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

// upgrade answers the WebSocket opening handshake (RFC 6455 §4.2) and
// returns the raw connection with any bytes the client sent after its
// request. It answers 400 itself when the request is not a handshake.
func upgrade(w http.ResponseWriter, r *http.Request) (net.Conn, []byte, bool) {
	key := r.Header.Get("Sec-Websocket-Key")
	if !headerHasToken(r.Header, "Connection", "upgrade") || !headerHasToken(r.Header, "Upgrade", "websocket") ||
		r.Header.Get("Sec-Websocket-Version") != "13" || !validKey(key) {
		w.Header().Set("Sec-WebSocket-Version", "13")
		http.Error(w, "this is a WebSocket endpoint: send a version 13 opening handshake", http.StatusBadRequest)
		return nil, nil, false
	}
	hj, ok := w.(http.Hijacker)
	if !ok {
		http.Error(w, "cannot upgrade this connection", http.StatusInternalServerError)
		return nil, nil, false
	}
	nc, brw, err := hj.Hijack()
	if err != nil {
		return nil, nil, false
	}
	var early []byte
	if n := brw.Reader.Buffered(); n > 0 {
		early, _ = brw.Reader.Peek(n) // a client may pipeline its first frame
		early = append([]byte(nil), early...)
	}
	if !writeAccept(nc, []byte(key)) {
		return nil, nil, false
	}
	return nc, early, true
}

// writeAccept writes the 101 answer to a handshake with key, and closes
// the connection if it cannot.
func writeAccept(nc net.Conn, key []byte) bool {
	var in [24 + len(acceptGUID)]byte
	if len(key) != 24 { // validKey: 16 bytes, base64
		nc.Close()
		return false
	}
	copy(in[copy(in[:], key):], acceptGUID)
	h := sha1.Sum(in[:])
	var out [len(switching) + 28 + 4]byte
	b := append(out[:0], switching...)
	b = base64.StdEncoding.AppendEncode(b, h[:])
	b = append(b, "\r\n\r\n"...)
	nc.SetWriteDeadline(time.Now().Add(writeWait))
	if _, err := nc.Write(b); err != nil {
		nc.Close()
		return false
	}
	nc.SetDeadline(time.Time{})
	return true
}

const switching = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: "

func validKey[T string | []byte](k T) bool {
	var b [18]byte // 24 characters decode to at most 18 bytes
	if len(k) != 24 {
		return false
	}
	n, err := base64.StdEncoding.Decode(b[:], []byte(k))
	return err == nil && n == 16
}

func headerHasToken(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for _, t := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}
