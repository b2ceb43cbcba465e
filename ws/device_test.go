package ws_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	presence "github.com/presence-service/presence"
	"github.com/presence-service/presence/core"
)

// Each non-fatal errno of PROTOCOL §2 is answered with the exact JSON and
// leaves the socket open.
func TestDeviceErrorsKeepSocketOpen(t *testing.T) {
	h := newHarness(t, nil)
	h.grant("ann@example.com", h.app)
	cases := []struct {
		name, before, frame, want string
	}{
		{"not an object", "", `[1,2]`, `{"result":false,"errno":1,"reason":"frame is not a JSON object"}`},
		{"not JSON", "", `{"type":`, `{"result":false,"errno":1,"reason":"frame is not a JSON object"}`},
		{"unknown type", "", `{"type":"dance"}`, `{"result":false,"errno":2,"reason":"unknown type \"dance\""}`},
		{"missing type", "", `{"session_id":"x"}`, `{"result":false,"errno":2,"reason":"missing type"}`},
		{"missing assertion", "", `{"type":"connect"}`, `{"result":false,"errno":3,"reason":"assertion: missing"}`},
		{"bad device id", "", `{"type":"connect","assertion":"x","device_id":"a b"}`, `{"result":false,"errno":3,"reason":"device_id: want 1 to 64 of A-Z a-z 0-9 . _ -"}`},
		{"wrong field type", "", `{"type":"connect","assertion":7}`, `{"result":false,"errno":3,"reason":"assertion: wrong type, want string"}`},
		{"app ids not numbers", "", `{"type":"connect","assertion":"x","application_ids":["a"]}`, `{"result":false,"errno":3,"reason":"application_ids: want an array of app ids"}`},
		{"needs session", "", `{"type":"status","session_id":"x","status":"online"}`, `{"result":false,"errno":10,"reason":"request needs a session: send connect first"}`},
		{"invalid assertion", "", `{"type":"connect","assertion":"abc.def"}`, `{"result":false,"errno":34,"reason":"invalid assertion: bad signature"}`},
		{"expired assertion", "", `{"type":"connect","assertion":"` + h.dev.Mint("ann@example.com", -time.Minute) + `"}`, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := h.dial("/presence")
			c.Send(tc.frame)
			got := c.Read()
			if tc.want == "" { // expiry carries a time: check the shape
				if !strings.HasPrefix(got, `{"result":false,"errno":35,"reason":"assertion expired at `) {
					t.Fatalf("got %s, want errno 35", got)
				}
			} else if got != tc.want {
				t.Fatalf("got  %s\nwant %s", got, tc.want)
			}
			c.StillOpen()
		})
	}
}

func TestDeviceErrorsWithSession(t *testing.T) {
	h := newHarness(t, nil)
	h.grant("ann@example.com", h.app)
	c, sid := h.connect("ann@example.com", "phone", h.app)

	c.Send(`{"type":"connect","assertion":"` + h.dev.Mint("ann@example.com", time.Hour) + `"}`)
	c.Expect(`{"result":false,"errno":11,"reason":"already connected on this socket"}`)
	c.Send(`{"type":"status","session_id":"` + sid + `","status":"busy"}`)
	c.Expect(`{"result":false,"errno":4,"reason":"invalid status value \"busy\": want online, unavailable or offline"}`)
	c.Send(`{"type":"status","session_id":"` + sid + `"}`)
	c.Expect(`{"result":false,"errno":3,"reason":"status: missing"}`)
	c.Send(`{"type":"status","session_id":"` + sid + `","status":"online","message":"` + strings.Repeat("x", 141) + `"}`)
	c.Expect(`{"result":false,"errno":3,"reason":"message: 141 characters, at most 140"}`)
	c.Send(`{"type":"visibility","session_id":"` + sid + `"}`)
	c.Expect(`{"result":false,"errno":3,"reason":"application_ids: missing"}`)
	c.Send(`{"type":"ack","session_id":"` + sid + `","ids":[]}`)
	c.Expect(`{"result":false,"errno":3,"reason":"ids: want a non-empty array of notification ids"}`)
	c.Send(`{"type":"status","session_id":"` + sid + `","status":"online","message":"ok"}`)
	c.Expect(`{"result":true}`)
	c.StillOpen()
}

func TestConnectAnswersIgnoredApps(t *testing.T) {
	h := newHarness(t, nil)
	h.grant("ann@example.com", h.app)
	other, _ := h.newApp("game.example") // active, not granted
	c := h.dial("/presence")
	c.Send(fmt.Sprintf(`{"type":"connect","assertion":"%s","application_ids":[%d,%d,4242]}`, h.dev.Mint("ann@example.com", time.Hour), h.app, other))
	got := c.Read()
	want := fmt.Sprintf(`,"ignored_application_ids":[%d,4242]}`, other)
	if !strings.HasPrefix(got, `{"result":true,"session_id":"`) || !strings.HasSuffix(got, want) {
		t.Fatalf("got %s, want a session and %s", got, want)
	}
}

func TestRateLimit(t *testing.T) {
	transports(t, func(c *presence.Config) { c.Limits.StatusPerMinute = 2 }, func(t *testing.T, h *harness) {
		c, sid := h.connect("ann@example.com", "phone")
		status := `{"type":"status","session_id":"` + sid + `","status":"online"}`
		c.Send(status)
		c.Expect(`{"result":true}`)
		c.Send(status)
		c.Expect(`{"result":true}`)
		c.Send(status)
		c.Expect(`{"result":false,"errno":29,"reason":"slow down: rate limit hit","retry_after":30}`)
		c.StillOpen()
	})
}

// Each negative errno closes the socket after its answer.
func TestWrongSessionIDEndsSession(t *testing.T) {
	transports(t, nil, func(t *testing.T, h *harness) {
		c, _ := h.connect("ann@example.com", "phone")
		c.Send(`{"type":"status","session_id":"not-mine","status":"online"}`)
		c.Expect(`{"result":false,"errno":-1,"reason":"unknown or wrong session_id"}`)
		if code := c.ExpectClosed(); code != websocket.ClosePolicyViolation {
			t.Fatalf("close code %d, want 1008", code)
		}
	})
}

// Over TLS each device is read by a goroutine of its own (epoll cannot
// see TLS records), and answers are written by that goroutine: the
// channel works as it does on plain sockets, errors and close included.
func TestDeviceOverTLS(t *testing.T) {
	h := newTLSHarness(t)
	h.grant("ann@example.com", h.app)
	app := h.appChannel(h.app, h.key)
	c, sid := h.connect("ann@example.com", "phone", h.app)
	c.Send(`{"type":"status","session_id":"` + sid + `","status":"online","message":"over tls"}`)
	c.Expect(`{"result":true}`)
	// The connect may have shown the device to the app first.
	for got := app.Read(); !strings.Contains(got, `"status":"online","message":"over tls"`); got = app.Read() {
		if !strings.Contains(got, `"status":"online"`) {
			t.Fatalf("app got %s", got)
		}
	}
	c.Send(`{"type":"ping"}`)
	c.Expect(`{"result":true}`)
	c.Send(`{"type":"status","session_id":"not-mine","status":"online"}`)
	c.Expect(`{"result":false,"errno":-1,"reason":"unknown or wrong session_id"}`)
	if code := c.ExpectClosed(); code != websocket.ClosePolicyViolation {
		t.Fatalf("close code %d, want 1008", code)
	}
}

func TestReplacedByNewerConnection(t *testing.T) {
	transports(t, nil, func(t *testing.T, h *harness) {
		old, _ := h.connect("ann@example.com", "phone")
		fresh, sid := h.connect("ann@example.com", "phone")
		old.Expect(`{"result":false,"errno":-2,"reason":"replaced by a newer connection of the same user and device"}`)
		if code := old.ExpectClosed(); code != websocket.CloseNormalClosure {
			t.Fatalf("close code %d, want 1000", code)
		}
		fresh.Send(`{"type":"status","session_id":"` + sid + `","status":"online"}`)
		fresh.Expect(`{"result":true}`)
	})
}

func TestSessionTooOld(t *testing.T) {
	transports(t, func(c *presence.Config) { c.Device.MaxSession.Duration = 200 * time.Millisecond }, func(t *testing.T, h *harness) {
		c, _ := h.connect("ann@example.com", "phone")
		c.Expect(`{"result":false,"errno":-3,"reason":"session too old: connect again"}`)
		if code := c.ExpectClosed(); code != websocket.CloseNormalClosure {
			t.Fatalf("close code %d, want 1000", code)
		}
	})
}

func TestShutdownTellsDevices(t *testing.T) {
	transports(t, nil, func(t *testing.T, h *harness) {
		c, _ := h.connect("ann@example.com", "phone")
		if err := h.router.Shutdown(context.Background()); err != nil {
			t.Fatal(err)
		}
		c.Expect(`{"result":false,"errno":-4,"reason":"server shutting down: connect again"}`)
		if code := c.ExpectClosed(); code != websocket.CloseGoingAway {
			t.Fatalf("close code %d, want 1001", code)
		}
	})
}

func TestTooManyErrorsInARow(t *testing.T) {
	transports(t, func(c *presence.Config) { c.Limits.MaxConsecutiveErrors = 3 }, func(t *testing.T, h *harness) {
		c := h.dial("/presence")
		c.Send(`{"type":"dance"}`)
		c.Read()
		c.StillOpen() // a success resets the count
		for range 2 {
			c.Send(`{"type":"dance"}`)
			c.Read()
		}
		c.Send(`{"type":"dance"}`)
		c.Expect(`{"result":false,"errno":2,"reason":"unknown type \"dance\""}`)
		c.Expect(`{"result":false,"errno":-5,"reason":"too many errors in a row"}`)
		if code := c.ExpectClosed(); code != websocket.ClosePolicyViolation {
			t.Fatalf("close code %d, want 1008", code)
		}
	})
}

func TestOversizeFrameCloses1009(t *testing.T) {
	transports(t, nil, func(t *testing.T, h *harness) {
		c := h.dial("/presence")
		c.Send(`{"type":"ping","pad":"` + strings.Repeat("x", 5000) + `"}`)
		if code := c.ExpectClosed(); code != websocket.CloseMessageTooBig {
			t.Fatalf("close code %d, want 1009", code)
		}
	})
}

// A device that answers no ping for idle_timeout is dropped, and is told
// so with close 1001 when its socket takes the frame: a device that is
// there after all, but stalled, learns why and reconnects. Before, the
// socket just ended, as if the server had failed.
func TestIdleDeviceIsDropped(t *testing.T) {
	transports(t, func(c *presence.Config) { c.Device.IdleTimeout.Duration = 300 * time.Millisecond }, func(t *testing.T, h *harness) {
		c, _ := h.connect("ann@example.com", "phone")
		// Answer no ping: swallow them instead of sending pongs.
		c.Conn.SetPingHandler(func(string) error { return nil })
		c.Conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		for {
			if _, _, err := c.Conn.ReadMessage(); err != nil {
				if ne, ok := err.(interface{ Timeout() bool }); ok && ne.Timeout() {
					t.Fatal("the server kept an idle device for 5 s; idle_timeout is 300 ms")
				}
				var ce *websocket.CloseError
				if !errors.As(err, &ce) || ce.Code != websocket.CloseGoingAway || ce.Text != "no answer to pings for device.idle_timeout" {
					t.Fatalf("dropped with %v, want close 1001 saying why", err)
				}
				return
			}
		}
	})
}

func TestAnsweringPingsKeepsDeviceAlive(t *testing.T) {
	transports(t, func(c *presence.Config) { c.Device.IdleTimeout.Duration = 300 * time.Millisecond }, func(t *testing.T, h *harness) {
		c, _ := h.connect("ann@example.com", "phone")
		pings := make(chan struct{}, 10)
		c.Conn.SetPingHandler(func(data string) error {
			pings <- struct{}{}
			return c.Conn.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(time.Second))
		})
		go func() {
			for {
				if _, _, err := c.Conn.ReadMessage(); err != nil {
					return
				}
			}
		}()
		for range 5 { // 5 pings at idle/2 each span well past idle_timeout
			select {
			case <-pings:
			case <-time.After(5 * time.Second):
				t.Fatal("no ping from the server")
			}
		}
		if got := h.router.Stats().Devices; got != 1 {
			t.Fatalf("devices = %d after answering pings, want 1", got)
		}
	})
}

var _ = core.Online

// The device channel speaks RFC 6455 itself: fragmented messages,
// client pings and the closing handshake work as browsers expect.
func TestFragmentsPingsAndClose(t *testing.T) {
	transports(t, nil, func(t *testing.T, h *harness) {
		c := h.dial("/presence")
		// A request in three fragments, a ping between two of them (RFC 6455
		// lets control frames interleave).
		raw := c.Conn.NetConn()
		raw.Write(masked(false, 0x1, `{"ty`))
		raw.Write(masked(false, 0x0, `pe":"pi`))
		raw.Write(masked(true, 0x9, `mid`))
		raw.Write(masked(true, 0x0, `ng"}`))
		// A ping from the client gets its pong.
		pong := make(chan string, 1)
		c.Conn.SetPongHandler(func(data string) error { pong <- data; return nil })
		c.Expect(`{"result":true}`) // the pong for "mid" came first
		if got := <-pong; got != "mid" {
			t.Fatalf("pong %q, want mid", got)
		}
		c.Conn.WriteControl(websocket.PingMessage, []byte("hello"), time.Now().Add(time.Second))
		c.Send(`{"type":"ping"}`)
		c.Expect(`{"result":true}`) // reading lets gorilla run the pong handler
		select {
		case got := <-pong:
			if got != "hello" {
				t.Fatalf("pong %q", got)
			}
		default:
			t.Fatal("no pong for the client's ping")
		}
		// The client closes; the server answers with the same code.
		c.Conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, "bye"), time.Now().Add(time.Second))
		if code := c.ExpectClosed(); code != websocket.CloseNormalClosure {
			t.Fatalf("close code %d, want 1000", code)
		}
	})
}

func TestBinaryFrameIsErrno1(t *testing.T) {
	transports(t, nil, func(t *testing.T, h *harness) {
		c := h.dial("/presence")
		c.Conn.WriteMessage(websocket.BinaryMessage, []byte(`{"type":"ping"}`))
		c.Expect(`{"result":false,"errno":1,"reason":"frame is not a JSON object: binary frame"}`)
		c.StillOpen()
	})
}

func TestNotAWebSocketHandshake(t *testing.T) {
	h := newHarness(t, nil)
	resp, err := http.Get(h.srv.URL + "/presence")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || resp.Header.Get("Sec-WebSocket-Version") != "13" {
		t.Fatalf("GET without upgrade: %d %v", resp.StatusCode, resp.Header)
	}
}

// masked is one client frame, written by hand to send what gorilla's
// client would not (fragments of our choosing).
func masked(fin bool, op byte, payload string) []byte {
	b0 := op
	if fin {
		b0 |= 0x80
	}
	b := []byte{b0, 0x80 | byte(len(payload)), 1, 2, 3, 4}
	for i := range len(payload) {
		b = append(b, payload[i]^byte(i%4+1))
	}
	return b
}
