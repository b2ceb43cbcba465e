package ws_test

import (
	"bufio"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// maskedText is a client text frame of any length, masked.
func maskedText(payload string) []byte {
	b := []byte{0x81}
	if n := len(payload); n <= 125 {
		b = append(b, 0x80|byte(n))
	} else {
		b = append(b, 0x80|126)
		b = binary.BigEndian.AppendUint16(b, uint16(n))
	}
	key := [4]byte{9, 8, 7, 6}
	b = append(b, key[:]...)
	for i := range len(payload) {
		b = append(b, payload[i]^key[i%4])
	}
	return b
}

// rawUpgrade is a device's upgrade request for path, by hand.
func rawUpgrade(host, path string) string {
	k := make([]byte, 16)
	rand.Read(k)
	return "GET " + path + " HTTP/1.1\r\nHost: " + host + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: " + base64.StdEncoding.EncodeToString(k) + "\r\nSec-WebSocket-Version: 13\r\n\r\n"
}

// readFrame reads one unmasked server frame's payload (short frames).
func readFrame(t testing.TB, br *bufio.Reader) string {
	t.Helper()
	_, payload := readServerFrame(t, br)
	return payload
}

// A device that pipelines its connect behind the upgrade request, or
// sends its request a few bytes at a time, is served by the front door;
// one whose request has a query goes through net/http and gorilla (which,
// as RFC 6455 §4.1 lets it, refuses frames sent before its answer), and
// works too.
func TestFrontDoorServesDevices(t *testing.T) {
	h := newHarness(t, nil)
	h.grant("ann@example.com", h.app)
	host := strings.TrimPrefix(h.srv.URL, "http://")
	connect := `{"type":"connect","assertion":"` + h.dev.Mint("ann@example.com", time.Hour) + `","application_ids":[` + itoa(int64(h.app)) + `],"device_id":"%s"}`
	for name, tc := range map[string]struct {
		path  string
		chunk int // write the request this many bytes at a time; 0: all at once, with the connect frame
	}{
		"pipelined":    {"/presence", 0},
		"in pieces":    {"/presence", 7},
		"with a query": {"/presence?v=1", 1 << 10},
	} {
		t.Run(name, func(t *testing.T) {
			c, err := net.Dial("tcp", host)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(5 * time.Second))
			req := []byte(rawUpgrade(host, tc.path))
			frame := maskedText(strings.Replace(connect, "%s", strings.ReplaceAll(name, " ", "-"), 1))
			if tc.chunk == 0 {
				c.Write(append(req, frame...))
			} else {
				for i := 0; i < len(req); i += tc.chunk {
					c.Write(req[i:min(i+tc.chunk, len(req))])
					time.Sleep(time.Millisecond)
				}
			}
			br := bufio.NewReader(c)
			resp, err := http.ReadResponse(br, nil)
			if err != nil || resp.StatusCode != http.StatusSwitchingProtocols || resp.Header.Get("Sec-WebSocket-Accept") == "" {
				t.Fatalf("upgrade: %v %v", resp, err)
			}
			if tc.chunk != 0 {
				c.Write(frame)
			}
			if got := readFrame(t, br); !strings.HasPrefix(got, `{"result":true,"session_id":"`) {
				t.Fatalf("connect answer %s", got)
			}
		})
	}
}

// What is not a device upgrade reaches net/http through the front door,
// keep-alive included.
func TestFrontDoorHandsTheRestToNetHTTP(t *testing.T) {
	h := newHarness(t, nil)
	for range 3 { // the same keep-alive connection, after the first
		resp, err := http.Get(h.srv.URL + "/healthz")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || string(body) != "ok\n" {
			t.Fatalf("healthz: %d %q", resp.StatusCode, body)
		}
	}
	h.appChannel(h.app, h.key) // an app's upgrade is net/http's
}

// Served by net/http alone (TLS, where the front door cannot read the
// request), a device works as before.
func TestDeviceWithoutFrontDoor(t *testing.T) {
	h := newHarnessWith(t, nil, false)
	h.grant("ann@example.com", h.app)
	c, session := h.connect("ann@example.com", "phone", h.app)
	c.Send(`{"type":"status","session_id":"` + session + `","status":"online"}`)
	c.Expect(`{"result":true}`)
	if h.router.Stats().Devices != 1 {
		t.Fatal("not counted")
	}
}
