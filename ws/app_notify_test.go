package ws_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	presence "github.com/presence-service/presence"
	"github.com/presence-service/presence/core"
	"github.com/presence-service/presence/internal/presencetest"
)

// channelAnswer is an app channel's answer to a notification batch
// (PROTOCOL §3).
type channelAnswer struct {
	Type       string `json:"type"`
	ID         string `json:"id"`
	Result     string `json:"result"`
	QueueSize  int    `json:"queue_size"`
	Errno      int    `json:"errno"`
	Reason     string `json:"reason"`
	RetryAfter int    `json:"retry_after"`
	Results    []struct {
		UID       string `json:"UID"`
		QueueSize int    `json:"queue_size"`
	} `json:"results"`
}

// devicePush is a notification as a device gets it (PROTOCOL §2).
type devicePush struct {
	Type    string `json:"type"`
	ID      string `json:"id"`
	AppID   int64  `json:"app_id"`
	UID     string `json:"UID"`
	Message string `json:"message"`
	Action  string `json:"action"`
}

func batchFrame(id string, items ...string) string {
	return `{"type":"notification","id":"` + id + `","items":[` + strings.Join(items, ",") + `]}`
}

// nextAnswer reads the channel until a notification answer, skipping
// status arrays, and decodes it.
func nextAnswer(t *testing.T, app *client) (channelAnswer, string) {
	t.Helper()
	for {
		frame := app.Read()
		if strings.HasPrefix(frame, "[") {
			continue
		}
		var a channelAnswer
		if err := json.Unmarshal([]byte(frame), &a); err != nil || a.Type != "notification" {
			t.Fatalf("want a notification answer, got %s", frame)
		}
		return a, frame
	}
}

// firstPushed connects a device of email and returns the first
// notification devicePush to it, or fails if none comes before a ping's
// answer.
func firstPushed(t *testing.T, h *harness, email string) devicePush {
	t.Helper()
	dev, _ := h.connect(email, "phone", h.app)
	dev.Send(`{"type":"ping"}`)
	frame := dev.Read()
	var p devicePush
	if err := json.Unmarshal([]byte(frame), &p); err != nil || p.Type != "notification" {
		t.Fatalf("want a devicePush notification, got %s", frame)
	}
	return p
}

func TestAppChannelNotificationSingleItem(t *testing.T) {
	h := newHarness(t, nil)
	puid := h.grant("ann@example.com", h.app)
	app := h.appChannel(h.app, h.key)
	app.Send(batchFrame("n-42", item(puid, "Fred mentioned you")))
	app.Expect(`{"type":"notification","id":"n-42","result":"OK","queue_size":1,"results":[{"UID":"` + puid + `","queue_size":1}]}`)
	p := firstPushed(t, h, "ann@example.com")
	if p.UID != puid || p.Message != "Fred mentioned you" || p.AppID != int64(h.app) || p.Action != "https://beer.example/r/1" {
		t.Fatalf("device got %+v", p)
	}
}

func TestAppChannelNotificationBatchOf100(t *testing.T) {
	h := newHarness(t, nil)
	ann, bob := h.grant("ann@example.com", h.app), h.grant("bob@example.com", h.app)
	items := make([]string, 100)
	for i := range items {
		puid := ann
		if i%2 == 1 {
			puid = bob
		}
		items[i] = item(puid, fmt.Sprintf("m%d", i))
	}
	app := h.appChannel(h.app, h.key)
	app.Send(batchFrame("b-1", items...))
	a, frame := nextAnswer(t, app)
	if a.ID != "b-1" || a.Result != "OK" || a.QueueSize != 50 || len(a.Results) != 100 {
		t.Fatalf("answer %s", frame)
	}
	for i, r := range a.Results {
		want := ann
		if i%2 == 1 {
			want = bob
		}
		if r.UID != want || r.QueueSize != 50 { // each queue's size once the batch is stored
			t.Fatalf("results[%d] = %+v, want %s with queue_size 50", i, r, want)
		}
	}
	if p := firstPushed(t, h, "bob@example.com"); p.Message != "m1" {
		t.Fatalf("bob's first notification %+v, want m1", p)
	}
}

func TestAppChannelNotificationPushedToConnectedDevice(t *testing.T) {
	h := newHarness(t, nil)
	puid := h.grant("ann@example.com", h.app)
	dev, _ := h.connect("ann@example.com", "phone", h.app)
	app := h.appChannel(h.app, h.key)
	app.Send(batchFrame("live", item(puid, "now")))
	if a, frame := nextAnswer(t, app); a.Result != "OK" {
		t.Fatalf("answer %s", frame)
	}
	var p devicePush
	dev.Decode(&p)
	if p.Type != "notification" || p.UID != puid || p.Message != "now" {
		t.Fatalf("device got %+v", p)
	}
}

// A refused batch stores nothing, and each refusal says why: errno and
// reason as a POST's (PROTOCOL §4), the bad item's index, the batch's id.
func TestAppChannelNotificationRefused(t *testing.T) {
	h := newHarness(t, nil)
	puid := h.grant("ann@example.com", h.app)
	revoked := h.grant("cy@example.com", h.app)
	if err := h.router.Revoke(t.Context(), "cy@example.com", revoked); err != nil {
		t.Fatal(err)
	}
	other, _ := h.newApp("game.example")
	foreign := h.grant("ann@example.com", other)
	ok := item(puid, "stored?")
	long := strings.Repeat("x", 65)
	cases := []struct{ name, frame, want string }{
		{"missing message", `{"type":"notification","id":"a","items":[` + ok + `,{"UID":"` + puid + `"}]}`,
			`{"type":"notification","id":"a","result":"error","errno":3,"reason":"item 1: UID and message are required","index":1}`},
		{"action not https", batchFrame("b", ok, `{"UID":"`+puid+`","message":"m","action":"http://beer.example/"}`),
			`{"type":"notification","id":"b","result":"error","errno":3,"reason":"action: want an https: URL or an app URI","index":1}`},
		{"ttl out of range", batchFrame("c", `{"UID":"`+puid+`","message":"m","ttl":4}`),
			`{"type":"notification","id":"c","result":"error","errno":3,"reason":"item 0: ttl: want whole seconds from 5 to 86400","index":0}`},
		{"unknown UID", batchFrame("d", ok, item("nobody", "x")),
			`{"type":"notification","id":"d","result":"error","errno":44,"reason":"item 1: unknown UID","index":1}`},
		{"another app's UID", batchFrame("e", item(foreign, "x")),
			`{"type":"notification","id":"e","result":"error","errno":44,"reason":"item 0: unknown UID","index":0}`},
		{"revoked UID", batchFrame("f", ok, item(revoked, "x")),
			`{"type":"notification","id":"f","result":"error","errno":44,"reason":"item 1: unknown UID","index":1}`},
		{"no items", `{"type":"notification","id":"g"}`,
			`{"type":"notification","id":"g","result":"error","errno":3,"reason":"items: want a JSON array of 1 to 100 notifications"}`},
		{"empty items", `{"type":"notification","id":"h","items":[]}`,
			`{"type":"notification","id":"h","result":"error","errno":3,"reason":"items: want a JSON array of 1 to 100 notifications"}`},
		{"101 items", batchFrame("i", strings.Split(strings.Repeat(ok+"\n", 101), "\n")[:101]...),
			`{"type":"notification","id":"i","result":"error","errno":3,"reason":"items: want a JSON array of 1 to 100 notifications"}`},
		{"items not an array", `{"type":"notification","id":"j","items":{"UID":"x"}}`,
			`{"type":"notification","id":"j","result":"error","errno":3,"reason":"items: want a JSON array of 1 to 100 notifications"}`},
		{"no id", `{"type":"notification","items":[` + ok + `]}`,
			`{"type":"notification","result":"error","errno":3,"reason":"id: want a string of 1 to 64 characters"}`},
		{"id not a string", `{"type":"notification","id":42,"items":[` + ok + `]}`,
			`{"type":"notification","result":"error","errno":3,"reason":"id: want a string of 1 to 64 characters"}`},
		{"empty id", batchFrame("", ok),
			`{"type":"notification","id":"","result":"error","errno":3,"reason":"id: want a string of 1 to 64 characters"}`},
		{"id too long", batchFrame(long, ok),
			`{"type":"notification","id":"` + long + `","result":"error","errno":3,"reason":"id: want a string of 1 to 64 characters"}`},
	}
	app := h.appChannel(h.app, h.key)
	for _, tc := range cases {
		app.Send(tc.frame)
		if _, got := nextAnswer(t, app); got != tc.want {
			t.Errorf("%s:\ngot  %s\nwant %s", tc.name, got, tc.want)
		}
	}
	// 64 characters, not bytes, is the longest id.
	id := strings.Repeat("é", 64)
	app.Send(batchFrame(id, item(puid, "kept")))
	if a, frame := nextAnswer(t, app); a.ID != id || a.Result != "OK" {
		t.Fatalf("64-character id: %s", frame)
	}
	// Nothing of the refused batches was stored: the device's first
	// notification is the one accepted batch's.
	if p := firstPushed(t, h, "ann@example.com"); p.Message != "kept" {
		t.Fatalf("first notification %+v, want the accepted batch's", p)
	}
	// Frames that are not notifications keep their answers.
	app.Send(`{"type":"dance"}`)
	app.Expect(`{"result":false,"errno":2,"reason":"unknown type: the app channel takes probe"}`)
	app.Send(`null`)
	app.Expect(`{"result":false,"errno":1,"reason":"frame is not a JSON object of the app channel"}`)
}

// The channel and POSTs draw on one bucket per app
// (limits.notifications_per_minute).
func TestAppChannelNotificationRateLimit(t *testing.T) {
	h := newHarness(t, func(c *presence.Config) { c.Limits.NotificationsPerMinute = 3 })
	puid := h.grant("ann@example.com", h.app)
	app := h.appChannel(h.app, h.key)
	app.Send(batchFrame("1", item(puid, "1"), item(puid, "2")))
	if a, frame := nextAnswer(t, app); a.Result != "OK" {
		t.Fatalf("first batch: %s", frame)
	}
	app.Send(batchFrame("2", item(puid, "3"), item(puid, "4")))
	app.Expect(`{"type":"notification","id":"2","result":"error","errno":29,"reason":"slow down: notifications_per_minute reached","retry_after":20}`)
	if status, body, _ := h.post(int64(h.app), h.key, "["+item(puid, "5")+","+item(puid, "6")+"]"); status != 429 {
		t.Fatalf("POST after the channel took the bucket: %d %s", status, body)
	}
}

// Many batches in flight on one channel are each answered once, paired by
// id, between status arrays and probe answers.
func TestAppChannelNotificationsManyInFlight(t *testing.T) {
	h := newHarness(t, nil)
	ann, bob := h.grant("ann@example.com", h.app), h.grant("bob@example.com", h.app)
	app := h.appChannel(h.app, h.key)
	dev, sid := h.connect("bob@example.com", "phone", h.app)
	const n = 200
	for i := range n {
		app.Send(batchFrame(fmt.Sprintf("m-%d", i), item(ann, fmt.Sprint(i))))
		if i == n/2 {
			app.Send(`{"type":"probe","UIDs":["` + ann + `"]}`)
			dev.Send(`{"type":"status","session_id":"` + sid + `","status":"online"}`)
		}
	}
	seen := map[string]bool{}
	var probed, statused bool
	for len(seen) < n || !probed || !statused {
		frame := app.Read()
		if strings.HasPrefix(frame, "[") {
			statused = statused || strings.Contains(frame, `{"UID":"`+bob+`","status":"online"`)
			probed = probed || strings.Contains(frame, `{"UID":"`+ann+`","status":"offline"`)
			continue
		}
		var a channelAnswer
		if err := json.Unmarshal([]byte(frame), &a); err != nil || a.Result != "OK" || seen[a.ID] {
			t.Fatalf("answer %s (seen before: %v)", frame, seen[a.ID])
		}
		seen[a.ID] = true
	}
	for i := range n {
		if !seen[fmt.Sprintf("m-%d", i)] {
			t.Fatalf("no answer for m-%d", i)
		}
	}
}

// On shutdown the channel closes with 1001 (going away), after the answer
// of a batch it had accepted.
func TestAppChannelClosesGoingAwayOnShutdown(t *testing.T) {
	h := newHarness(t, nil)
	puid := h.grant("ann@example.com", h.app)
	app := h.appChannel(h.app, h.key)
	app.Send(batchFrame("last", item(puid, "before shutdown")))
	app.Send(`{"type":"probe","UIDs":["` + puid + `"]}`) // answered once the batch is accepted
	answered := false
	for {
		frame := app.Read()
		if strings.HasPrefix(frame, `{"type":"notification","id":"last","result":"OK"`) {
			answered = true
		} else if strings.HasPrefix(frame, "[") {
			break
		} else {
			t.Fatalf("got %s", frame)
		}
	}
	h.router.CloseAllApps(core.ErrnoShuttingDown)
	if !answered {
		app.Conn.SetReadDeadline(time.Now().Add(presencetest.Timeout))
		_, frame, err := app.Conn.ReadMessage()
		if err != nil || !strings.HasPrefix(string(frame), `{"type":"notification","id":"last","result":"OK"`) {
			t.Fatalf("want the batch's answer before the close, got %s %v", frame, err)
		}
	}
	if code := app.ExpectClosed(); code != websocket.CloseGoingAway {
		t.Fatalf("close code %d, want 1001", code)
	}
}

// A batch as large as a POST may be (100 items of 512 two-byte
// characters) fits on the channel once the key is proved; before it, a
// frame that large closes the channel with 1009.
func TestAppChannelFrameLimits(t *testing.T) {
	h := newHarness(t, nil)
	puid := h.grant("ann@example.com", h.app)
	items := make([]string, 100)
	for i := range items {
		items[i] = item(puid, strings.Repeat("é", 512))
	}
	app := h.appChannel(h.app, h.key)
	app.Send(batchFrame("big", items...))
	if a, frame := nextAnswer(t, app); a.Result != "OK" || len(a.Results) != 100 {
		t.Fatalf("answer %.200s", frame)
	}
	// The server stops reading at the frame's header, so its close may
	// reach the client as a reset, with the write cut short: either way
	// the key is not checked.
	c := h.dial(fmt.Sprintf("/%d", h.app))
	c.Conn.WriteMessage(websocket.TextMessage, []byte(`{"key":"`+strings.Repeat("k", 100<<10)+`"}`))
	c.Conn.SetReadDeadline(time.Now().Add(presencetest.Timeout))
	_, frame, err := c.Conn.ReadMessage()
	var ce *websocket.CloseError
	if err == nil || (errors.As(err, &ce) && ce.Code != websocket.CloseMessageTooBig) {
		t.Fatalf("got %s %v, want close 1009", frame, err)
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatal("the server kept the channel open")
	}
}

// Over TLS (presence serve with server.tls_cert) the answers, which the
// writer frames itself, are the same.
func TestAppChannelNotificationOverTLS(t *testing.T) {
	h := newTLSHarness(t)
	puid := h.grant("ann@example.com", h.app)
	app := h.appChannel(h.app, h.key)
	for i := range 20 {
		app.Send(batchFrame(fmt.Sprint(i), item(puid, fmt.Sprint(i))))
	}
	seen := map[string]bool{}
	for len(seen) < 20 {
		a, frame := nextAnswer(t, app)
		if a.Result != "OK" || seen[a.ID] {
			t.Fatalf("answer %s", frame)
		}
		seen[a.ID] = true
	}
}
