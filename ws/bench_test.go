package ws

import (
	"fmt"
	"testing"
	"time"

	"github.com/presence-service/presence/core"
)

// BenchmarkDecodeStatus measures parsing a device's status frame, the
// most frequent request.
func BenchmarkDecodeStatus(b *testing.B) {
	frame := []byte(`{"type":"status","session_id":"2f1c7a4e-8a53-4c61-9f0e-6b2d5e7f9a10","status":"online","message":"In a meeting"}`)
	b.ReportAllocs()
	b.SetBytes(int64(len(frame)))
	for b.Loop() {
		if _, err := decodeRequest(frame); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecodeStatusOnDevice parses the same frame as a device does:
// into a pooled request, with the device's own session id known.
func BenchmarkDecodeStatusOnDevice(b *testing.B) {
	frame := []byte(`{"type":"status","session_id":"2f1c7a4e-8a53-4c61-9f0e-6b2d5e7f9a10","status":"online","message":"In a meeting"}`)
	session := "2f1c7a4e-8a53-4c61-9f0e-6b2d5e7f9a10"
	b.ReportAllocs()
	b.SetBytes(int64(len(frame)))
	for b.Loop() {
		r := requests.Get().(*request)
		*r = request{}
		if req, err := decodeRequestInto(frame, r, session); err != nil || req.SessionID != session {
			b.Fatal(err)
		}
		requests.Put(r)
	}
}

// BenchmarkEncodeUpdates measures encoding an app's status array of 16
// updates, as the app channel's writer does.
func BenchmarkEncodeUpdates(b *testing.B) {
	at := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	updates := make([]core.StatusUpdate, 16)
	for i := range updates {
		updates[i] = core.StatusUpdate{PUID: core.NewPUID(), Status: core.Online, Message: "In a \"meeting\"", At: at}
	}
	var buf []byte
	b.ReportAllocs()
	for b.Loop() {
		buf = append(buf[:0], '[')
		for i, u := range updates {
			if i > 0 {
				buf = append(buf, ',')
			}
			buf = appendUpdate(buf, u)
		}
		buf = append(buf, ']')
	}
	b.SetBytes(int64(len(buf)))
}

// BenchmarkEncodeNotification measures a notification frame for a device.
func BenchmarkEncodeNotification(b *testing.B) {
	n := core.Notification{ID: core.NewNotificationID(), AppID: 421, PUID: core.NewPUID(), Message: "Fred mentioned you in #beer",
		Action: "https://beerchat.example/r/beer", CreatedAt: time.Now(), ExpiresAt: time.Now().Add(time.Minute)}
	var buf []byte
	b.ReportAllocs()
	for b.Loop() {
		buf = appendNotification(buf[:0], n)
	}
}

// notifyBatch100 is a POST body of 100 items, as apps send them.
func notifyBatch100() []byte {
	b := []byte{'['}
	for i := range 100 {
		if i > 0 {
			b = append(b, ',')
		}
		b = fmt.Appendf(b, `{"UID":"p-%06d-4f1c9a","message":"Fred mentioned you in #beer","action":"https://beerchat.example/r/beer","ttl":60}`, i)
	}
	return append(b, ']')
}

// BenchmarkDecodeNotifyBatch100 is the body of a batched POST through
// decodeNotifyItems (its hand-written fast path).
func BenchmarkDecodeNotifyBatch100(b *testing.B) {
	body := notifyBatch100()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if items, err := decodeNotifyItems(body); err != nil || len(items) != 100 {
			b.Fatal(len(items), err)
		}
	}
}

// BenchmarkDecodeNotifyBatch100JSON is the same body through
// encoding/json alone, the path every other body takes.
func BenchmarkDecodeNotifyBatch100JSON(b *testing.B) {
	body := notifyBatch100()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if items, err := decodeNotifyItemsEach(body); err != nil || len(items) != 100 {
			b.Fatal(len(items), err)
		}
	}
}
