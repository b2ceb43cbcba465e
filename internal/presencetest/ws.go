package presencetest

import (
	"encoding/json"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// Timeout bounds every wait for something the server must send.
const Timeout = 5 * time.Second

// WS is a WebSocket peer that fails the test when the server does not
// answer in time.
type WS struct {
	T    testing.TB
	Conn *websocket.Conn
}

// Dial opens a WebSocket to url (ws://host/path).
func Dial(t testing.TB, url string) *WS {
	t.Helper()
	c, resp, err := websocket.DefaultDialer.Dial(url, nil)
	if err != nil {
		t.Fatalf("dial %s: %v (%v)", url, err, resp)
	}
	t.Cleanup(func() { c.Close() })
	return &WS{T: t, Conn: c}
}

// Send writes one text frame.
func (c *WS) Send(frame string) {
	c.T.Helper()
	if err := c.Conn.WriteMessage(websocket.TextMessage, []byte(frame)); err != nil {
		c.T.Fatal(err)
	}
}

// Read returns the next text frame.
func (c *WS) Read() string {
	c.T.Helper()
	c.Conn.SetReadDeadline(time.Now().Add(Timeout))
	_, data, err := c.Conn.ReadMessage()
	if err != nil {
		c.T.Fatalf("read: %v", err)
	}
	return string(data)
}

// Expect reads the next frame and compares it with want, exactly.
func (c *WS) Expect(want string) {
	c.T.Helper()
	if got := c.Read(); got != want {
		c.T.Fatalf("got  %s\nwant %s", got, want)
	}
}

// Decode reads the next frame as JSON into v.
func (c *WS) Decode(v any) {
	c.T.Helper()
	data := c.Read()
	if err := json.Unmarshal([]byte(data), v); err != nil {
		c.T.Fatalf("%s: %v", data, err)
	}
}

// ExpectClosed reads until the server's close frame and returns its code.
func (c *WS) ExpectClosed() int {
	c.T.Helper()
	c.Conn.SetReadDeadline(time.Now().Add(Timeout))
	for {
		_, data, err := c.Conn.ReadMessage()
		if err == nil {
			c.T.Fatalf("want close, got frame %s", data)
		}
		var ce *websocket.CloseError
		if errors.As(err, &ce) {
			return ce.Code
		}
		c.T.Fatalf("want a close frame, got %v", err)
	}
}

// ExpectGone reads until the connection ends, however it ends; it fails
// if the server keeps it open for Timeout.
func (c *WS) ExpectGone() {
	c.T.Helper()
	c.Conn.SetReadDeadline(time.Now().Add(Timeout))
	for {
		if _, _, err := c.Conn.ReadMessage(); err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				c.T.Fatal("the server kept the connection open")
			}
			return
		}
	}
}

// StillOpen checks the device socket still answers a ping request.
func (c *WS) StillOpen() {
	c.T.Helper()
	c.Send(`{"type":"ping"}`)
	c.Expect(`{"result":true}`)
}
