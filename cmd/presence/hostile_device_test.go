package main

import (
	"fmt"
	"strings"
	"testing"

	"github.com/gorilla/websocket"
)

// deviceCase is one hostile frame on the device channel (PROTOCOL §2).
type deviceCase struct {
	name    string
	session bool   // connect first; the frame's %[1]s is the session id
	frame   string // a text frame (fmt format with the session id)
	binary  []byte // or a binary/raw text frame sent as is
	raw     bool   // binary holds a text frame's raw bytes (not UTF-8)
	errno   int    // the errno answered; 0: none (a close only)
	close   int    // the close code that follows; 0: the socket stays open
	sid     string // the session's id, once connected
}

func deviceCases(h *hostile) []deviceCase {
	tok := h.annToken
	long := strings.Repeat("x", 5000)
	return []deviceCase{
		{name: "not JSON", frame: `hello`, errno: 1},
		{name: "a JSON array", frame: `[]`, errno: 1},
		{name: "a JSON number", frame: `123`, errno: 1},
		{name: "JSON null", frame: `null`, errno: 1},
		{name: "a JSON string", frame: `"connect"`, errno: 1},
		{name: "truncated object", frame: `{"type":"connect"`, errno: 1},
		{name: "object without type", frame: `{}`, errno: 2},
		{name: "unknown type", frame: `{"type":"subscribe"}`, errno: 2},
		{name: "type not a string", frame: `{"type":7}`, errno: 3},
		{name: "status before connect", frame: `{"type":"status","session_id":"x","status":"online"}`, errno: 10},
		{name: "ack before connect", frame: `{"type":"ack","session_id":"x","ids":["n-1"]}`, errno: 10},
		{name: "connect without assertion", frame: `{"type":"connect","application_ids":[],"device_id":"d"}`, errno: 3},
		{name: "connect with a non-string assertion", frame: `{"type":"connect","assertion":42,"application_ids":[],"device_id":"d"}`, errno: 3},
		{name: "connect with a forged assertion", frame: `{"type":"connect","assertion":"eyJ.forged","application_ids":[],"device_id":"d"}`, errno: 34},
		{name: "connect with an assertion cut short", frame: fmt.Sprintf(`{"type":"connect","assertion":%q,"application_ids":[],"device_id":"d"}`, tok[:len(tok)-3]), errno: 34},
		{name: "connect with a 65-character device_id", frame: fmt.Sprintf(`{"type":"connect","assertion":%q,"application_ids":[],"device_id":%q}`, tok, strings.Repeat("d", 65)), errno: 3},
		{name: "connect with a device_id with a space", frame: fmt.Sprintf(`{"type":"connect","assertion":%q,"application_ids":[],"device_id":"my phone"}`, tok), errno: 3},
		{name: "connect with a device_id of markup", frame: fmt.Sprintf(`{"type":"connect","assertion":%q,"application_ids":[],"device_id":"<b>"}`, tok), errno: 3},
		{name: "connect with application_ids not an array", frame: fmt.Sprintf(`{"type":"connect","assertion":%q,"application_ids":"1","device_id":"d"}`, tok), errno: 3},
		{name: "connect with string application_ids", frame: fmt.Sprintf(`{"type":"connect","assertion":%q,"application_ids":["1"],"device_id":"d"}`, tok), errno: 3},
		{name: "a frame over 4 KiB", frame: `{"type":"connect","assertion":"` + long + `"}`, close: websocket.CloseMessageTooBig},
		{name: "a binary frame", binary: []byte(`{"type":"connect"}`), errno: 1},
		{name: "a text frame that is not UTF-8", binary: []byte("{\"type\":\"\xff\xfe\"}"), raw: true, close: websocket.CloseInvalidFramePayloadData},
		{name: "connect twice", session: true, frame: fmt.Sprintf(`{"type":"connect","assertion":%q,"application_ids":[],"device_id":"d2"}`, tok), errno: 11},
		{name: "an invalid status", session: true, frame: `{"type":"status","session_id":"%[1]s","status":"busy"}`, errno: 4},
		{name: "status as a number", session: true, frame: `{"type":"status","session_id":"%[1]s","status":1}`, errno: 3},
		{name: "a status message over 512 characters", session: true, frame: `{"type":"status","session_id":"%[1]s","status":"online","message":"` + strings.Repeat("m", 513) + `"}`, errno: 3},
		{name: "status without session_id", session: true, frame: `{"type":"status","status":"online"}`, errno: -1, close: websocket.ClosePolicyViolation},
		{name: "unknown type in a session", session: true, frame: `{"type":"delete","session_id":"%[1]s"}`, errno: 2},
		{name: "ack with ids not an array", session: true, frame: `{"type":"ack","session_id":"%[1]s","ids":"n-1"}`, errno: 3},
		{name: "ack of 101 ids", session: true, frame: `{"type":"ack","session_id":"%[1]s","ids":[` + strings.TrimSuffix(strings.Repeat(`"n-1",`, 101), ",") + `]}`, errno: 3},
		{name: "visibility with a non-array", session: true, frame: `{"type":"visibility","session_id":"%[1]s","application_ids":"all"}`, errno: 3},
		{name: "a wrong session_id", session: true, frame: `{"type":"status","session_id":"not-mine","status":"online"}`, errno: -1, close: websocket.ClosePolicyViolation},
		{name: "not JSON in a session", session: true, frame: `}{`, errno: 1},
	}
}

func TestHostileDevice(t *testing.T) {
	h := newHostile(t)
	for _, tc := range deviceCases(h) {
		t.Run(tc.name, func(t *testing.T) {
			c := h.ws("/presence", "")
			if tc.session {
				c.Send(fmt.Sprintf(`{"type":"connect","assertion":%q,"application_ids":[%d],"device_id":"hostile"}`, h.annToken, h.app))
				var ok struct {
					Result  bool   `json:"result"`
					Session string `json:"session_id"`
				}
				c.Decode(&ok)
				if !ok.Result {
					t.Fatalf("connect: %+v", ok)
				}
				if strings.Contains(tc.frame, "%[1]s") {
					tc.frame = fmt.Sprintf(tc.frame, ok.Session)
				}
				tc.sid = ok.Session
			}
			var err error
			switch {
			case tc.raw:
				err = c.Conn.WriteMessage(websocket.TextMessage, tc.binary)
			case tc.binary != nil:
				err = c.Conn.WriteMessage(websocket.BinaryMessage, tc.binary)
			default:
				err = c.Conn.WriteMessage(websocket.TextMessage, []byte(tc.frame))
			}
			if err != nil {
				t.Fatal(err)
			}
			if tc.errno != 0 {
				expectErrno(t, c, tc.errno)
			}
			if tc.close != 0 {
				if code := c.ExpectClosed(); code != tc.close {
					t.Fatalf("close code %d, want %d", code, tc.close)
				}
			} else if tc.session {
				// The socket still serves its session.
				c.Send(fmt.Sprintf(`{"type":"status","session_id":%q,"status":"unavailable"}`, tc.sid))
				c.Expect(`{"result":true}`)
			}
			h.healthyDevice(t)
		})
	}
	// Errors in a row end the session (errno -5); a healthy device is
	// still served.
	t.Run("too many errors in a row", func(t *testing.T) {
		c := h.ws("/presence", "")
		for range 10 {
			c.Send(`{"type":"nope"}`)
			expectErrno(t, c, 2)
		}
		c.Send(`{"type":"nope"}`)
		expectErrno(t, c, -5)
		if code := c.ExpectClosed(); code != websocket.ClosePolicyViolation {
			t.Fatalf("close code %d, want 1008", code)
		}
		h.healthyDevice(t)
	})
	t.Run("a request storm is told to slow down", func(t *testing.T) {
		c := h.ws("/presence", "")
		c.Send(fmt.Sprintf(`{"type":"connect","assertion":%q,"application_ids":[],"device_id":"storm"}`, h.annToken))
		var ok struct {
			Session string `json:"session_id"`
		}
		c.Decode(&ok)
		for range 120 {
			c.Send(fmt.Sprintf(`{"type":"status","session_id":%q,"status":"online"}`, ok.Session))
			c.Expect(`{"result":true}`)
		}
		c.Send(fmt.Sprintf(`{"type":"status","session_id":%q,"status":"online"}`, ok.Session))
		if a := expectErrno(t, c, 29); a.RetryAfter < 1 {
			t.Fatalf("errno 29 without retry_after: %+v", a)
		}
		// Being told to slow down is not an error in a row: more than
		// limits.max_consecutive_errors answers of 29 never become -5.
		for range 12 {
			c.Send(fmt.Sprintf(`{"type":"status","session_id":%q,"status":"online"}`, ok.Session))
			expectErrno(t, c, 29)
		}
		h.healthyDevice(t)
	})
}
