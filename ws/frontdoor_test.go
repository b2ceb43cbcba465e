package ws

import (
	"net"
	"strings"
	"testing"
	"time"

	"github.com/presence-service/presence/ws/internal/netpoll"
)

const goodHead = "GET /presence HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
	"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"

func TestDeviceUpgradeParsesOnlyPlainHandshakes(t *testing.T) {
	if key, ok := deviceUpgrade([]byte(goodHead)); !ok || string(key) != "dGhlIHNhbXBsZSBub25jZQ==" {
		t.Fatalf("plain handshake: %q %v", key, ok)
	}
	lower := "GET /presence HTTP/1.1\r\nhost: h\r\nupgrade: WebSocket\r\nconnection: keep-alive, upgrade\r\n" +
		"sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\nsec-websocket-version: 13\r\nOrigin: https://x.example\r\n"
	if _, ok := deviceUpgrade([]byte(lower)); !ok {
		t.Fatal("header names in lower case, a token list in Connection: refused")
	}
	for name, head := range map[string]string{
		"query":          strings.Replace(goodHead, "/presence ", "/presence?x=1 ", 1),
		"HEAD":           strings.Replace(goodHead, "GET", "HEAD", 1),
		"HTTP/1.0":       strings.Replace(goodHead, "HTTP/1.1", "HTTP/1.0", 1),
		"no host":        strings.Replace(goodHead, "Host: 127.0.0.1:8080\r\n", "", 1),
		"no upgrade":     strings.Replace(goodHead, "Upgrade: websocket\r\n", "", 1),
		"no connection":  strings.Replace(goodHead, "Connection: Upgrade\r\n", "Connection: keep-alive\r\n", 1),
		"version 8":      strings.Replace(goodHead, "Version: 13", "Version: 8", 1),
		"bad key":        strings.Replace(goodHead, "dGhlIHNhbXBsZSBub25jZQ==", "short", 1),
		"two keys":       goodHead + "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n",
		"body":           goodHead + "Content-Length: 3\r\n",
		"chunked":        goodHead + "Transfer-Encoding: chunked\r\n",
		"folded":         goodHead + "X-A: b\r\n c\r\n",
		"space in name":  goodHead + "X A: b\r\n",
		"control in val": goodHead + "X-A: b\x01\r\n",
		"no colon":       goodHead + "X-A\r\n",
	} {
		if _, ok := deviceUpgrade([]byte(head)); ok {
			t.Errorf("%s: taken by the front door, want net/http to judge it", name)
		}
	}
}

func TestCouldBeServed(t *testing.T) {
	for head, want := range map[string]bool{
		"":                           true,
		"GET /pres":                  true,
		"GET /presence HTTP/1.1\r\n": true,
		"GET /presence/x":            false,
		"POS":                        false,
		"POST /1/notification":       false,
		"POST/1":                     false,
		"PUT /1/notification":        false,
		"GET /healthz HTTP/1.1\r\n":  false,
	} {
		if got := couldBeServed([]byte(head)); got != want {
			t.Errorf("%q: %v, want %v", head, got, want)
		}
	}
}

// discardConn takes writes and forgets them.
type discardConn struct{ net.Conn }

func (discardConn) Write(b []byte) (int, error)      { return len(b), nil }
func (discardConn) SetWriteDeadline(time.Time) error { return nil }
func (discardConn) SetDeadline(time.Time) error      { return nil }
func (discardConn) Close() error                     { return nil }

// BenchmarkDeviceHandshake measures the front door's part of a device
// connect: parsing the upgrade request and writing the 101 answer.
func BenchmarkDeviceHandshake(b *testing.B) {
	head := []byte(goodHead + "Origin: https://app.example\r\nUser-Agent: Mozilla/5.0 (X11; Linux x86_64)\r\n")
	var c discardConn
	b.ReportAllocs()
	for b.Loop() {
		key, ok := deviceUpgrade(head)
		if !ok || !netpoll.WriteAccept(c, key) {
			b.Fatal("refused")
		}
	}
}
