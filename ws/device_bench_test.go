package ws_test

import (
	"strconv"
	"testing"

	presence "github.com/presence-service/presence"
)

// BenchmarkDeviceStatusRoundTrip is one device's status through the
// whole device channel: the frame over loopback, the epoll collector,
// the router, the answer back, while an app channel takes the update.
// One op is one round trip; the device waits for each answer.
func BenchmarkDeviceStatusRoundTrip(b *testing.B) {
	// The bench's own limit, as presence-bench gives its server: the
	// figure is the path's, not the abuse limiter's.
	h := newHarness(b, func(c *presence.Config) { c.Limits.StatusPerMinute = 1 << 30 })
	h.grant("ann@example.com", h.app)
	app := h.appChannel(h.app, h.key)
	go func() { // the app takes every update, as a live one does
		for {
			if _, _, err := app.Conn.ReadMessage(); err != nil {
				return
			}
		}
	}()
	d := h.dialRaw("ann@example.com")
	var frames [2][]byte
	for i, status := range []string{"online", "unavailable"} {
		frames[i] = maskedText(`{"type":"status","session_id":"` + d.session + `","status":"` + status + `","message":"` + strconv.Itoa(i) + `"}`)
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if _, err := d.c.Write(frames[i%2]); err != nil {
			b.Fatal(err)
		}
		if got := readFrame(b, d.br); got != `{"result":true}` {
			b.Fatalf("answer %s", got)
		}
	}
}
