package ws

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/presence-service/presence/core"
)

// Whatever an app sends, the decoder does not panic; what it accepts as a
// notification batch is what encoding/json reads in the frame, with an id
// of 1 to 64 characters and 1 to 100 items; invalid JSON is never taken.
func FuzzDecodeAppFrame(f *testing.F) {
	for _, s := range []string{
		`{"type":"notification","id":"n-42","items":[{"UID":"u","message":"m","action":"https://a.example/","ttl":60}]}`,
		`{"type":"notification","id":"n","items":[{"UID":"u","message":"m"},{"UID":"v","message":"é\n"}]}`,
		`{"type":"notification","id":42,"items":[]}`,
		`{"type":"notification","items":{"UID":"u"}}`,
		`{"type":"probe","UIDs":["a","b"]}`,
		`{"type":"probe","UIDs":5}`,
		`{"type":"dance"}`, `null`, `[]`, `"x"`, `{"type":5}`, ``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if fast, ok := decodeNotificationFast(data); ok {
			slow, err := decodeAppFrameSlow(data)
			if err != nil || slow.err != nil || !reflect.DeepEqual(fast, slow) {
				t.Fatalf("%q: fast %+v, encoding/json %+v (%v)", data, fast, slow, err)
			}
		}
		req, err := decodeAppFrame(data)
		if err != nil {
			return
		}
		if !json.Valid(data) {
			t.Fatalf("took invalid JSON %q", data)
		}
		if req.kind != "notification" {
			return
		}
		if req.err != nil {
			if core.ErrnoOf(req.err) != core.ErrnoInvalidField || req.items != nil {
				t.Fatalf("refusal %v with %d items", req.err, len(req.items))
			}
			return
		}
		if n := utf8.RuneCountInString(req.id); !req.echo || n < 1 || n > maxNotifyIDChars {
			t.Fatalf("accepted id %q (echo %v)", req.id, req.echo)
		}
		var ref struct {
			Items []notifyItem `json:"items"`
		}
		if err := json.Unmarshal(data, &ref); err != nil {
			t.Fatalf("accepted %q, which encoding/json refuses: %v", data, err)
		}
		if len(req.items) < 1 || len(req.items) > core.MaxNotificationBatch || len(req.items) != len(ref.Items) {
			t.Fatalf("accepted %d items, encoding/json reads %d", len(req.items), len(ref.Items))
		}
		for i, it := range req.items {
			r := ref.Items[i]
			if r.UID == nil || r.Message == nil || it.PUID != *r.UID || it.Message != *r.Message {
				t.Fatalf("item %d: %+v, encoding/json reads %+v", i, it, r)
			}
		}
	})
}

// Past appMaxInFlight batches, or appMaxInFlightBytes of their frames, a
// batch is refused with errno 29 until answers are written; once the
// channel closes, with the close's errno.
func TestAppAnswersBoundInFlight(t *testing.T) {
	a := newAppAnswers()
	for i := range appMaxInFlight {
		if err := a.admit(100); err != nil {
			t.Fatalf("batch %d refused: %v", i, err)
		}
	}
	err := a.admit(100)
	if core.ErrnoOf(err) != core.ErrnoRateLimited || !strings.Contains(core.ReasonOf(err), "256 notification batches") {
		t.Fatalf("batch past the bound: %v", err)
	}
	a.push([]byte("answer"), 100)
	a.written(a.take(nil))
	if err := a.admit(100); err != nil {
		t.Fatalf("after an answer was written: %v", err)
	}

	b := newAppAnswers()
	if err := b.admit(appMaxInFlightBytes); err != nil {
		t.Fatal(err)
	}
	if err := b.admit(1); core.ErrnoOf(err) != core.ErrnoRateLimited {
		t.Fatalf("past the bytes bound: %v", err)
	}
	b.close(core.ErrnoShuttingDown)
	b.written([]appAnswer{{size: appMaxInFlightBytes}})
	if !b.idle() {
		t.Fatal("not idle with nothing in flight")
	}
	var e *core.Error
	if err := b.admit(1); !errors.As(err, &e) || e.Errno != core.ErrnoShuttingDown {
		t.Fatalf("on a closing channel: %v", err)
	}
}

func TestChannelNotifyAnswers(t *testing.T) {
	req := appRequest{id: `a"b`, echo: true, items: []core.NotificationInput{{PUID: "p1"}, {PUID: "p2"}}}
	got := string(appendNotifyOK(req, []int{3, 1}))
	want := `{"type":"notification","id":"a\"b","result":"OK","queue_size":1,"results":[{"UID":"p1","queue_size":3},{"UID":"p2","queue_size":1}]}`
	if got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
	var v map[string]any
	if err := json.Unmarshal([]byte(got), &v); err != nil {
		t.Fatal(err)
	}
}

// The writer's frames are what RFC 6455 §5.2 says a server sends: FIN and
// text, no mask, the shortest length that fits.
func TestAppendTextFrame(t *testing.T) {
	for _, tc := range []struct {
		n    int
		head []byte
	}{
		{0, []byte{0x81, 0}},
		{125, []byte{0x81, 125}},
		{126, []byte{0x81, 126, 0, 126}},
		{65535, []byte{0x81, 126, 0xFF, 0xFF}},
		{65536, []byte{0x81, 127, 0, 0, 0, 0, 0, 1, 0, 0}},
	} {
		payload := []byte(strings.Repeat("x", tc.n))
		got := appendTextFrame([]byte("before"), payload)
		want := append(append([]byte("before"), tc.head...), payload...)
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%d bytes: head % x, want % x", tc.n, got[6:6+len(tc.head)], tc.head)
		}
	}
}
