package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/gorilla/websocket"

	"github.com/presence-service/presence/internal/presencetest"
)

// The app channel (PROTOCOL §3): what comes before the key, then what an
// authenticated app may send wrong.

type appKeyCase struct {
	name  string
	app   func(h *hostile) int64
	frame func(h *hostile) string
	errno int
}

type appFrameCase struct {
	name  string
	frame func(h *hostile) string
	errno int    // the errno answered
	typ   string // "notification": the answer is a batch's ({"type":"notification","result":"error",…})
	index int    // for a batch answer: the item named; -1: none
	close int    // a close code that follows instead of an answer
}

func TestHostileAppChannel(t *testing.T) {
	h := newHostile(t)
	own := func(h *hostile) int64 { return h.app }
	for _, tc := range []appKeyCase{
		{"not JSON", own, func(*hostile) string { return "hello" }, 40},
		{"an empty object", own, func(*hostile) string { return "{}" }, 40},
		{"an empty key", own, func(*hostile) string { return `{"key":""}` }, 40},
		{"a key that is a number", own, func(*hostile) string { return `{"key":1234}` }, 40},
		{"a key that is an array", own, func(*hostile) string { return `{"key":["a"]}` }, 40},
		{"a wrong key", own, func(*hostile) string { return `{"key":"not the key"}` }, 40},
		{"another app's key", own, func(h *hostile) string { return fmt.Sprintf(`{"key":%q}`, h.otherKey) }, 40},
		{"the key with a space added", own, func(h *hostile) string { return fmt.Sprintf(`{"key":%q}`, h.key+" ") }, 40},
		{"the key cut short", own, func(h *hostile) string { return fmt.Sprintf(`{"key":%q}`, h.key[:1023]) }, 40},
		{"a probe before the key", own, func(h *hostile) string { return fmt.Sprintf(`{"type":"probe","UIDs":[%q]}`, h.puid) }, 40},
		{"an app not activated", func(h *hostile) int64 { return h.inactive }, func(h *hostile) string { return fmt.Sprintf(`{"key":%q}`, h.key) }, 41},
	} {
		t.Run("key: "+tc.name, func(t *testing.T) {
			c := h.ws(fmt.Sprintf("/%d", tc.app(h)), h.source())
			c.Send(tc.frame(h))
			expectErrno(t, c, tc.errno)
			if code := c.ExpectClosed(); code != websocket.ClosePolicyViolation {
				t.Fatalf("close code %d, want 1008", code)
			}
			h.healthyApp(t)
		})
	}
	for _, path := range []string{"/9999", "/0", "/-1", "/01", "/+1", "/1.0", "/abc", "/99999999999999999999"} {
		t.Run("path: "+path, func(t *testing.T) {
			_, resp, err := websocket.DefaultDialer.Dial(h.n.ws(path), nil)
			if err == nil || resp == nil || resp.StatusCode != http.StatusNotFound {
				t.Fatalf("dial %s: %v %v, want 404", path, resp, err)
			}
			h.healthyApp(t)
		})
	}

	item := func(uid string) string { return fmt.Sprintf(`{"UID":%q,"message":"x"}`, uid) }
	batch := func(items ...string) string {
		return `{"type":"notification","id":"n-1","items":[` + strings.Join(items, ",") + `]}`
	}
	for _, tc := range []appFrameCase{
		{name: "not JSON", frame: func(*hostile) string { return "hello" }, errno: 1, index: -1},
		{name: "a JSON array", frame: func(*hostile) string { return "[]" }, errno: 1, index: -1},
		{name: "an unknown type", frame: func(*hostile) string { return `{"type":"subscribe"}` }, errno: 2, index: -1},
		{name: "a probe without UIDs", frame: func(*hostile) string { return `{"type":"probe"}` }, errno: 3, index: -1},
		{name: "a probe of an empty list", frame: func(*hostile) string { return `{"type":"probe","UIDs":[]}` }, errno: 3, index: -1},
		{name: "a probe of 1001 UIDs", frame: func(h *hostile) string {
			return `{"type":"probe","UIDs":[` + strings.TrimSuffix(strings.Repeat(fmt.Sprintf("%q,", h.puid), 1001), ",") + `]}`
		}, errno: 3, index: -1},
		{name: "a batch without id", frame: func(h *hostile) string { return `{"type":"notification","items":[` + item(h.puid) + `]}` }, errno: 3, typ: "notification", index: -1},
		{name: "a batch id of 65 characters", frame: func(h *hostile) string {
			return fmt.Sprintf(`{"type":"notification","id":%q,"items":[%s]}`, strings.Repeat("i", 65), item(h.puid))
		}, errno: 3, typ: "notification", index: -1},
		{name: "a batch of no items", frame: func(*hostile) string { return batch() }, errno: 3, typ: "notification", index: -1},
		{name: "a batch of 101 items", frame: func(h *hostile) string {
			items := make([]string, 101)
			for i := range items {
				items[i] = item(h.puid)
			}
			return batch(items...)
		}, errno: 3, typ: "notification", index: -1},
		{name: "a batch with a javascript: action", frame: func(h *hostile) string {
			return batch(item(h.puid), fmt.Sprintf(`{"UID":%q,"message":"x","action":"javascript:alert(1)"}`, h.puid))
		}, errno: 3, typ: "notification", index: 1},
		{name: "a batch to an unknown UID", frame: func(*hostile) string { return batch(item("0123456789abcdef0123456789abcdef")) }, errno: 44, typ: "notification", index: 0},
		{name: "a batch to another app's user", frame: func(h *hostile) string { return batch(item(h.otherPUID)) }, errno: 44, typ: "notification", index: 0},
		{name: "a frame over 513 KiB", frame: func(*hostile) string { return `{"type":"probe","UIDs":["` + strings.Repeat("u", 514<<10) + `"]}` }, close: websocket.CloseMessageTooBig},
	} {
		t.Run("frame: "+tc.name, func(t *testing.T) {
			c := h.ws(fmt.Sprintf("/%d", h.app), "")
			c.Send(fmt.Sprintf(`{"key":%q}`, h.key))
			c.Expect(`{"result":true}`)
			c.Send(tc.frame(h))
			if tc.close != 0 {
				if code := c.ExpectClosed(); code != tc.close {
					t.Fatalf("close code %d, want %d", code, tc.close)
				}
				h.healthyApp(t)
				return
			}
			frame := readAnswer(c)
			var got struct {
				Type   string `json:"type"`
				ID     string `json:"id"`
				Result any    `json:"result"`
				Errno  int    `json:"errno"`
				Index  *int   `json:"index"`
			}
			if err := json.Unmarshal([]byte(frame), &got); err != nil {
				t.Fatalf("%q: %v", frame, err)
			}
			index := -1
			if got.Index != nil {
				index = *got.Index
			}
			wantResult := any(false)
			if tc.typ == "notification" {
				wantResult = "error"
			}
			if got.Type != tc.typ || got.Result != wantResult || got.Errno != tc.errno || index != tc.index {
				t.Fatalf("got %s\nwant type %q result %v errno %d index %d", frame, tc.typ, wantResult, tc.errno, tc.index)
			}
			// The channel still serves: a probe is answered.
			c.Send(fmt.Sprintf(`{"type":"probe","UIDs":[%q]}`, h.puid))
			if a := readAnswer(c); !strings.Contains(a, h.puid) {
				t.Fatalf("probe after the error: %s", a)
			}
			h.healthyApp(t)
		})
	}
}

// readAnswer reads the next frame that is not a status array (updates
// may come between answers).
func readAnswer(c *presencetest.WS) string {
	for {
		f := c.Read()
		if !strings.HasPrefix(f, `[{"UID"`) {
			return f
		}
		var updates []map[string]any
		if json.Unmarshal([]byte(f), &updates) != nil {
			return f
		}
		if _, isProbe := updates[0]["error"]; isProbe || len(updates) == 1 {
			return f
		}
	}
}
