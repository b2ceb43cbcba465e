package ws_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/gorilla/websocket"

	presence "github.com/presence-service/presence"
)

// transports runs a device test over both transports of the device
// protocol: netpoll behind the front door, and gorilla through net/http.
func transports(t *testing.T, tweak func(*presence.Config), test func(t *testing.T, h *harness)) {
	for _, tr := range []struct {
		name      string
		frontDoor bool
	}{{"netpoll", true}, {"gorilla", false}} {
		t.Run(tr.name, func(t *testing.T) { test(t, newHarnessWith(t, tweak, tr.frontDoor)) })
	}
}

// A device told to slow down (errno 29) that keeps asking is never
// dropped for it: errno 29 does not count toward -5 (PROTOCOL §2).
func TestRateLimitedIsNotAnErrorInARow(t *testing.T) {
	transports(t, func(c *presence.Config) {
		c.Limits.StatusPerMinute = 1
		c.Limits.MaxConsecutiveErrors = 3
	}, func(t *testing.T, h *harness) {
		c, sid := h.connect("ann@example.com", "phone")
		status := `{"type":"status","session_id":"` + sid + `","status":"online"}`
		c.Send(status)
		c.Expect(`{"result":true}`)
		for range 10 {
			c.Send(status)
			c.Expect(`{"result":false,"errno":29,"reason":"slow down: rate limit hit","retry_after":60}`)
		}
		c.Send(`{"type":"ping"}`)
		c.Expect(`{"result":true}`)
	})
}

// A text frame that is not valid UTF-8 closes with 1007 (RFC 6455 §8.1).
func TestInvalidUTF8Closes1007(t *testing.T) {
	transports(t, nil, func(t *testing.T, h *harness) {
		c := h.dial("/presence")
		c.Send(`{"type":"ping","message":"` + "\xff\xfe" + `"}`)
		if code := c.ExpectClosed(); code != websocket.CloseInvalidFramePayloadData {
			t.Fatalf("close code %d, want 1007", code)
		}
	})
}

// One ack may carry up to 100 ids; 100 ids as the store makes them fit in
// the default limits.max_frame_bytes, and more are refused with errno 3.
func TestAckOfAHundredIDs(t *testing.T) {
	transports(t, nil, func(t *testing.T, h *harness) {
		puid := h.grant("ann@example.com", h.app)
		items := make([]string, 100)
		for i := range items {
			items[i] = item(puid, fmt.Sprint(i))
		}
		if status, body, _ := h.post(int64(h.app), h.key, "["+strings.Join(items, ",")+"]"); status != http.StatusOK {
			t.Fatalf("POST: %d %s", status, body)
		}
		c, sid := h.connect("ann@example.com", "phone")
		var ids []string
		for len(ids) < 100 {
			var n struct {
				Type, ID string
			}
			c.Decode(&n)
			if n.Type != "notification" {
				t.Fatalf("got %+v, want notifications", n)
			}
			ids = append(ids, n.ID)
		}
		tooMany, _ := json.Marshal(append(ids, "x"))
		c.Send(`{"type":"ack","session_id":"` + sid + `","ids":` + string(tooMany) + `}`)
		c.Expect(`{"result":false,"errno":3,"reason":"ids: at most 100 a request"}`)
		all, _ := json.Marshal(ids)
		ack := `{"type":"ack","session_id":"` + sid + `","ids":` + string(all) + `}`
		if len(ack) > h.cfg.Limits.MaxFrameBytes {
			t.Fatalf("an ack of 100 ids is %d bytes, over limits.max_frame_bytes %d", len(ack), h.cfg.Limits.MaxFrameBytes)
		}
		c.Send(ack)
		c.Expect(`{"result":true}`)
		pending, err := h.db.PendingNotifications(t.Context(), "ann@example.com", nil)
		if err != nil || len(pending) != 0 {
			t.Fatalf("after the ack: %d pending (%v), want 0", len(pending), err)
		}
	})
}
