package ws_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	presence "github.com/presence-service/presence"
	"github.com/presence-service/presence/internal/presencetest"
)

// post sends a notification request and returns the status and body.
func (h *harness) post(app int64, key, body string) (int, string, http.Header) {
	h.t.Helper()
	req, _ := http.NewRequest("POST", fmt.Sprintf("%s/%d/notification", h.srv.URL, app), strings.NewReader(body))
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(b)), resp.Header
}

func item(puid, msg string) string {
	return `{"UID":"` + puid + `","message":"` + msg + `","action":"https://beer.example/r/1"}`
}

// doors: the endpoint through the front door (presence serve without
// TLS) and through net/http alone (with TLS); the answers are the same.
var doors = []struct {
	name      string
	frontDoor bool
}{{"front door", true}, {"net/http", false}}

func TestNotifyErrors(t *testing.T) {
	for _, door := range doors {
		t.Run(door.name, func(t *testing.T) { testNotifyErrors(t, door.frontDoor) })
	}
}

func testNotifyErrors(t *testing.T, frontDoor bool) {
	h := newHarnessWith(t, nil, frontDoor)
	puid := h.grant("ann@example.com", h.app)
	other, otherKey := h.newApp("game.example")
	foreign := h.grant("ann@example.com", other)
	app := int64(h.app)
	ok := "[" + item(puid, "hi") + "]"
	long := strings.Repeat("x", 513)
	cases := []struct {
		name       string
		app        int64
		key, body  string
		status     int
		wantPrefix string
	}{
		{"no key", app, "", ok, 401, `{"result":"error","errno":40,"reason":"want Authorization: Bearer <api key>"}`},
		{"wrong key", app, "nope", ok, 401, `{"result":"error","errno":40,"reason":"wrong API key"}`},
		{"another app's key", app, otherKey, ok, 401, `{"result":"error","errno":40,"reason":"wrong API key"}`},
		{"unknown app", 9999, h.key, ok, 404, `{"result":"error","errno":44,"reason":"unknown app"}`},
		{"not an array", app, h.key, `{"UID":"x"}`, 400, `{"result":"error","errno":3,"reason":"body: want a JSON array of notifications"}`},
		{"empty batch", app, h.key, `[]`, 400, `{"result":"error","errno":3,"reason":"body: want 1 to 100 notifications, got 0"}`},
		{"101 items", app, h.key, "[" + strings.Repeat(item(puid, "x")+",", 100) + item(puid, "x") + "]", 400, `{"result":"error","errno":3,"reason":"body: want 1 to 100 notifications, got 101"}`},
		{"missing message", app, h.key, `[{"UID":"` + puid + `"}]`, 400, `{"result":"error","errno":3,"reason":"item 0: UID and message are required","index":0}`},
		{"message too long", app, h.key, "[" + item(puid, "ok") + "," + item(puid, long) + "]", 400, `{"result":"error","errno":3,"reason":"message: 513 characters, at most 512","index":1}`},
		{"action not https", app, h.key, `[{"UID":"` + puid + `","message":"m","action":"http://beer.example/"}]`, 400, `{"result":"error","errno":3,"reason":"action: want an https: URL or an app URI","index":0}`},
		{"javascript action", app, h.key, `[{"UID":"` + puid + `","message":"m","action":"javascript:alert(1)"}]`, 400, `{"result":"error","errno":3,"reason":"action: want an https: URL or an app URI","index":0}`},
		{"ttl too short", app, h.key, `[{"UID":"` + puid + `","message":"m","ttl":4}]`, 400, `{"result":"error","errno":3,"reason":"item 0: ttl: want whole seconds from 5 to 86400","index":0}`},
		{"ttl too long", app, h.key, `[{"UID":"` + puid + `","message":"m","ttl":86401}]`, 400, `{"result":"error","errno":3,"reason":"item 0: ttl: want whole seconds from 5 to 86400","index":0}`},
		{"unknown UID", app, h.key, "[" + item(puid, "ok") + "," + item("nobody", "x") + "]", 404, `{"result":"error","errno":44,"reason":"item 1: unknown UID","index":1}`},
		{"another app's UID", app, h.key, "[" + item(foreign, "x") + "]", 404, `{"result":"error","errno":44,"reason":"item 0: unknown UID","index":0}`},
		{"too large", app, h.key, "[" + strings.Repeat(" ", 600<<10) + "]", 413, `{"result":"error","errno":3,"reason":"body larger than 512 KiB"}`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			status, body, _ := h.post(tc.app, tc.key, tc.body)
			if status != tc.status || body != tc.wantPrefix {
				t.Fatalf("got %d %s\nwant %d %s", status, body, tc.status, tc.wantPrefix)
			}
		})
	}
	// Nothing of the refused batches was stored.
	pending, err := h.db.PendingNotifications(t.Context(), "ann@example.com", nil)
	if err != nil || len(pending) != 0 {
		t.Fatalf("after refused batches: %d stored (%v), want 0", len(pending), err)
	}
}

func TestNotifyInactiveApp(t *testing.T) {
	for _, door := range doors {
		t.Run(door.name, func(t *testing.T) {
			h := newHarnessWith(t, nil, door.frontDoor)
			if _, err := h.router.DeactivateApp(t.Context(), h.app); err != nil {
				t.Fatal(err)
			}
			status, body, _ := h.post(int64(h.app), h.key, `[]`)
			if status != 403 || body != `{"result":"error","errno":41,"reason":"app not activated"}` {
				t.Fatalf("got %d %s", status, body)
			}
		})
	}
}

func TestNotifyRateLimit(t *testing.T) {
	for _, door := range doors {
		t.Run(door.name, func(t *testing.T) {
			h := newHarnessWith(t, func(c *presence.Config) { c.Limits.NotificationsPerMinute = 3 }, door.frontDoor)
			puid := h.grant("ann@example.com", h.app)
			status, _, _ := h.post(int64(h.app), h.key, "["+item(puid, "1")+","+item(puid, "2")+"]")
			if status != 200 {
				t.Fatalf("first batch: %d", status)
			}
			status, body, hdr := h.post(int64(h.app), h.key, "["+item(puid, "3")+","+item(puid, "4")+"]")
			if status != 429 || body != `{"result":"error","errno":29,"reason":"slow down: notifications_per_minute reached"}` || hdr.Get("Retry-After") != "20" {
				t.Fatalf("got %d %s Retry-After=%q", status, body, hdr.Get("Retry-After"))
			}
		})
	}
}

func TestNotifyQueueCapDropsOldest(t *testing.T) {
	h := newHarness(t, nil)
	puid := h.grant("ann@example.com", h.app)
	items := make([]string, 100)
	for i := range items {
		items[i] = item(puid, fmt.Sprint(i))
	}
	status, body, _ := h.post(int64(h.app), h.key, "["+strings.Join(items, ",")+"]")
	if status != 200 || !strings.HasPrefix(body, `{"result":"OK","queue_size":100,"results":[{"UID":"`+puid+`","queue_size":100}`) {
		t.Fatalf("got %d %s", status, body)
	}
	status, body, _ = h.post(int64(h.app), h.key, "["+item(puid, "100")+"]")
	if status != 200 || body != `{"result":"OK","queue_size":100,"results":[{"UID":"`+puid+`","queue_size":100}]}` {
		t.Fatalf("101st: %d %s", status, body)
	}
	pending, _ := h.db.PendingNotifications(t.Context(), "ann@example.com", nil)
	if len(pending) != 100 || pending[0].Message != "1" || pending[99].Message != "100" {
		t.Fatalf("queue holds %d, first %q last %q; want 100 from \"1\" to \"100\"", len(pending), pending[0].Message, pending[99].Message)
	}
}

type pushed struct {
	Type      string `json:"type"`
	ID        string `json:"id"`
	AppID     int64  `json:"app_id"`
	UID       string `json:"UID"`
	Message   string `json:"message"`
	Action    string `json:"action"`
	CreatedAt string `json:"created_at"`
	ExpiresAt string `json:"expires_at"`
}

func TestNotificationsDeliveredAndAcked(t *testing.T) {
	h := newHarness(t, nil)
	puid := h.grant("ann@example.com", h.app)
	// Queued while no device is connected.
	if status, body, _ := h.post(int64(h.app), h.key, "["+item(puid, "while away")+"]"); status != 200 {
		t.Fatalf("%d %s", status, body)
	}
	phone, sid := h.connect("ann@example.com", "phone", h.app)
	var n pushed
	phone.Decode(&n)
	if n.Type != "notification" || n.UID != puid || n.AppID != int64(h.app) || n.Message != "while away" || n.Action != "https://beer.example/r/1" || n.ExpiresAt <= n.CreatedAt {
		t.Fatalf("pushed %+v", n)
	}
	// Not acked: pushed again on the next connect.
	phone.Conn.Close()
	phone, sid = h.connect("ann@example.com", "phone", h.app)
	var again pushed
	phone.Decode(&again)
	if again.ID != n.ID {
		t.Fatalf("redelivered %s, want %s", again.ID, n.ID)
	}
	// Pushed at once to a connected device; a second device gets it too.
	laptop, _ := h.connect("ann@example.com", "laptop", h.app)
	var onLaptop pushed
	laptop.Decode(&onLaptop) // the one still queued
	if status, body, _ := h.post(int64(h.app), h.key, "["+item(puid, "live")+"]"); status != 200 {
		t.Fatalf("%d %s", status, body)
	}
	var live pushed
	phone.Decode(&live)
	if live.Message != "live" {
		t.Fatalf("live push %+v", live)
	}
	laptop.Decode(&live)
	// Acked on the phone: never pushed again, to any device.
	phone.Send(`{"type":"ack","session_id":"` + sid + `","ids":["` + n.ID + `","` + live.ID + `"]}`)
	phone.Expect(`{"result":true}`)
	tablet, _ := h.connect("ann@example.com", "tablet", h.app)
	tablet.StillOpen() // the first frame after connect is the ping's answer: nothing was pushed
}

func TestNotifyResponseShape(t *testing.T) {
	h := newHarness(t, nil)
	a, b := h.grant("ann@example.com", h.app), h.grant("bob@example.com", h.app)
	status, body, _ := h.post(int64(h.app), h.key, "["+item(a, "1")+","+item(b, "2")+","+item(a, "3")+"]")
	var got presencetest.NotificationAnswer
	if err := json.Unmarshal([]byte(body), &got); err != nil || status != 200 {
		t.Fatalf("%d %s %v", status, body, err)
	}
	if got.Result != "OK" || got.QueueSize != 2 || len(got.Results) != 3 || got.Results[0].UID != a || got.Results[1].QueueSize != 1 {
		t.Fatalf("%+v", got)
	}
}

// A batch for several users reaches each user's device with that user's
// items only, in the batch's order.
func TestNotifyBatchOfSeveralUsersPushedToEach(t *testing.T) {
	h := newHarness(t, nil)
	ann := h.grant("ann@example.com", h.app)
	bob := h.grant("bob@example.com", h.app)
	annPhone, _ := h.connect("ann@example.com", "phone", h.app)
	bobPhone, _ := h.connect("bob@example.com", "phone", h.app)
	body := "[" + item(ann, "a1") + "," + item(bob, "b1") + "," + item(ann, "a2") + "]"
	if status, b, _ := h.post(int64(h.app), h.key, body); status != 200 {
		t.Fatalf("%d %s", status, b)
	}
	for _, want := range []struct {
		phone    *client
		uid, msg string
	}{{annPhone, ann, "a1"}, {annPhone, ann, "a2"}, {bobPhone, bob, "b1"}} {
		var n pushed
		want.phone.Decode(&n)
		if n.Type != "notification" || n.UID != want.uid || n.Message != want.msg {
			t.Fatalf("pushed %+v, want %s for %s", n, want.msg, want.uid)
		}
	}
	annPhone.StillOpen() // nothing more: bob's item did not go to ann
}
