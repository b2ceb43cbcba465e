package natsbus

import (
	"bytes"
	"reflect"
	"testing"
	"time"

	"github.com/presence-service/presence/core"
)

var testOrigin = [originLen]byte{1, 2, 3, 4, 5, 6, 7, 8}

// sampleMessages is one message of each kind, as a node would queue them.
func sampleMessages() []func(writer) writer {
	at := time.Unix(1700000000, 123)
	return []func(writer) writer{
		func(w writer) writer {
			return w.status(7, core.StatusUpdate{PUID: "p1", Status: core.Online, Message: "hi", At: at})
		},
		func(w writer) writer {
			return w.presence(core.NodePresence{Node: "n1", User: "u1", App: 7, PUIDs: []string{"p1", "p2"},
				Presence: core.Presence{Status: core.Online, Message: "lunch"}, At: at})
		},
		func(w writer) writer {
			return w.device(core.DeviceEvent{Kind: core.DeviceHandover, Node: "n1", To: "n2", User: "u1", DeviceID: "d",
				SessionID: "s", At: at, Apps: map[core.AppID]core.Presence{7: {Status: core.Online}}})
		},
		func(w writer) writer { return w.node(kindHeartbeat, "n1") },
		func(w writer) writer { return w.node(kindSyncRequest, "n2") },
		func(w writer) writer { return w.appChannels(core.AppChannels{Node: "n1", App: 7, Held: true}) },
		func(w writer) writer {
			return w.invalidation(core.Invalidation{Kind: core.GrantRevoked, App: 7, User: "u1", PUID: "p1"})
		},
		func(w writer) writer {
			return w.notifications([]core.Notification{{ID: "id", AppID: 7, PUID: "p1", UserID: "u1", Message: "m",
				CreatedAt: at, ExpiresAt: at.Add(time.Hour)}})
		},
	}
}

// queue puts each message of enc in o, as the Bus's Publish methods do.
func queue(o *outbox, enc ...func(writer) writer) {
	for _, e := range enc {
		w, start := o.begin()
		o.end(e(w), start)
	}
}

// readAll decodes a frame as a receiving Bus does: the messages that
// decode, in order, how many did not, and a broken framing.
func readAll(t testing.TB, f []byte) (ms []message, bad int, framing error) {
	t.Helper()
	origin, fr, err := readFrame(f)
	if err != nil {
		t.Fatalf("frame: %v", err)
	}
	if origin != testOrigin {
		t.Fatalf("origin %v, want %v", origin, testOrigin)
	}
	for {
		data, ok := fr.next()
		if !ok {
			return ms, bad, fr.err
		}
		m, err := decodeMessage(data)
		if err != nil {
			bad++
			continue
		}
		ms = append(ms, m)
	}
}

// frameMessages decodes every message of a frame, in order; all must.
func frameMessages(t testing.TB, f []byte) []message {
	t.Helper()
	ms, bad, framing := readAll(t, f)
	if bad != 0 || framing != nil {
		t.Fatalf("%d messages did not decode; framing: %v", bad, framing)
	}
	return ms
}

func TestFrameCarriesEveryKindInOrder(t *testing.T) {
	o := newOutbox(testOrigin, 1<<20)
	enc := sampleMessages()
	queue(o, enc...)
	full, last, queued := o.take()
	if len(full) != 0 || queued != len(enc) {
		t.Fatalf("took %d closed frames and %d messages, want 0 and %d", len(full), queued, len(enc))
	}
	ms := frameMessages(t, last)
	want := []byte{kindStatus, kindPresence, kindDevice, kindHeartbeat, kindSyncRequest, kindAppChannels, kindInvalidation, kindNotifications}
	if len(ms) != len(want) {
		t.Fatalf("decoded %d messages, want %d", len(ms), len(want))
	}
	for i, m := range ms {
		if m.kind != want[i] {
			t.Fatalf("message %d is of kind %d, want %d", i, m.kind, want[i])
		}
	}
	if p := ms[1].pres; p.User != "u1" || p.App != 7 || !reflect.DeepEqual(p.PUIDs, []string{"p1", "p2"}) || p.Message != "lunch" {
		t.Fatalf("presence decoded as %+v", p)
	}
	if full, last, queued := o.take(); full != nil || last != nil || queued != 0 {
		t.Fatalf("a second take found %d frames, %d bytes, %d messages; want nothing", len(full), len(last), queued)
	}
}

func TestFrameClosesAtTheLimit(t *testing.T) {
	const limit = 200
	o := newOutbox(testOrigin, limit)
	var sent []string
	for i := range 20 {
		puid := string(rune('a'+i)) + "-puid"
		sent = append(sent, puid)
		queue(o, func(w writer) writer { return w.status(1, core.StatusUpdate{PUID: puid, At: time.Unix(0, 0)}) })
	}
	full, last, queued := o.take()
	if queued != len(sent) {
		t.Fatalf("queued %d messages, want %d", queued, len(sent))
	}
	frames := append(full, last)
	if len(frames) < 2 {
		t.Fatalf("%d frames for %d bytes of messages, want several under %d bytes", len(frames), 20*30, limit)
	}
	var got []string
	for _, f := range frames {
		if len(f) > limit {
			t.Fatalf("a frame of %d bytes, over the limit of %d", len(f), limit)
		}
		for _, m := range frameMessages(t, f) {
			got = append(got, m.status.PUID)
		}
	}
	if !reflect.DeepEqual(got, sent) {
		t.Fatalf("frames carried %v, want %v in that order", got, sent)
	}
}

func TestFrameDropsOnlyItsBrokenMessage(t *testing.T) {
	o := newOutbox(testOrigin, 1<<20)
	enc := sampleMessages()
	queue(o, enc[0], func(w writer) writer { return w.u8(200) }, enc[1])
	_, f, _ := o.take()
	ms, bad, framing := readAll(t, f)
	var kinds []byte
	for _, m := range ms {
		kinds = append(kinds, m.kind)
	}
	if framing != nil || bad != 1 || !bytes.Equal(kinds, []byte{kindStatus, kindPresence}) {
		t.Fatalf("framing error %v, %d bad, kinds %v; want none, 1, [status presence]", framing, bad, kinds)
	}
}

// FuzzFrame feeds the receiving side what another node could send: it
// must return errors, never panic or allocate without bound.
func FuzzFrame(f *testing.F) {
	o := newOutbox(testOrigin, 1<<20)
	queue(o, sampleMessages()...)
	_, frame, _ := o.take()
	f.Add(frame)
	f.Add(frame[:len(frame)/2])
	f.Add([]byte("not a bus message"))
	f.Fuzz(func(t *testing.T, data []byte) {
		_, fr, err := readFrame(data)
		if err != nil {
			return
		}
		for {
			data, ok := fr.next()
			if !ok {
				return
			}
			decodeMessage(data)
		}
	})
}

// BenchmarkFrame is what one node does per status update of a user with
// two apps: queue two NodePresences, take the frame, and what every
// receiving node does: decode it.
func BenchmarkFrame(b *testing.B) {
	o := newOutbox(testOrigin, 1<<20)
	at := time.Unix(1700000000, 0)
	p := core.NodePresence{Node: "node-1", User: "user-000123", PUIDs: []string{"puid-000123-a"},
		Presence: core.Presence{Status: core.Online, Message: "here"}, At: at}
	b.ReportAllocs()
	for b.Loop() {
		for app := core.AppID(1); app <= 2; app++ {
			p.App = app
			w, start := o.begin()
			o.end(w.presence(p), start)
		}
		_, f, _ := o.take()
		_, fr, _ := readFrame(f)
		for {
			data, ok := fr.next()
			if !ok {
				break
			}
			if _, err := decodeMessage(data); err != nil {
				b.Fatal(err)
			}
		}
		o.recycle(f)
	}
}
