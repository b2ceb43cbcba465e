package ws_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	presence "github.com/presence-service/presence"
	"github.com/presence-service/presence/core"
)

// A backlog three times the device's outbox (5 apps × 150 queued, with
// queue_size 300) reaches the device a window at a time as it acks, in
// the order stored, and the device is never dropped for it (errno -6).
// Before the window, connect pushed the whole backlog at once and the
// device was dropped at every connect.
func TestBacklogDrainsWindowByWindow(t *testing.T) {
	h := newHarness(t, func(c *presence.Config) { c.Notifications.QueueSize = 300 })
	const apps, perApp = 5, 150
	window := h.cfg.Notifications.Window
	ctx := context.Background()
	ids := []core.AppID{h.app}
	for i := 1; i < apps; i++ {
		id, _ := h.newApp(fmt.Sprintf("app%d.example", i))
		ids = append(ids, id)
	}
	var stored []string // ids, in the order stored
	for _, app := range ids {
		puid := h.grant("ann@example.com", app)
		for sent := 0; sent < perApp; {
			n := min(core.MaxNotificationBatch, perApp-sent)
			items := make([]core.NotificationInput, n)
			for k := range items {
				items[k] = core.NotificationInput{PUID: puid, Message: fmt.Sprintf("app %d, item %d", app, sent+k)}
			}
			ns, _, err := h.router.Notify(ctx, app, items)
			if err != nil {
				t.Fatal(err)
			}
			for _, n := range ns {
				stored = append(stored, n.ID)
			}
			sent += n
		}
	}

	phone, sid := h.connect("ann@example.com", "phone", ids...)
	var got, unacked []string
	acks, answers := 0, 0
	ack := func() {
		for len(unacked) > 0 { // 50 ids a frame fit well within max_frame_bytes
			chunk := unacked[:min(50, len(unacked))]
			unacked = unacked[len(chunk):]
			phone.Send(`{"type":"ack","session_id":"` + sid + `","ids":["` + strings.Join(chunk, `","`) + `"]}`)
			acks++
		}
	}
	for len(got) < len(stored) || answers < acks {
		frame := phone.Read()
		var f struct {
			Type   string `json:"type"`
			ID     string `json:"id"`
			Result *bool  `json:"result"`
		}
		if err := json.Unmarshal([]byte(frame), &f); err != nil {
			t.Fatalf("%s: %v", frame, err)
		}
		if f.Result != nil {
			if !*f.Result {
				t.Fatalf("after %d of %d notifications: %s", len(got), len(stored), frame)
			}
			answers++
			continue
		}
		if f.Type != "notification" {
			t.Fatalf("unexpected frame %s", frame)
		}
		got = append(got, f.ID)
		unacked = append(unacked, f.ID)
		if len(unacked) > window {
			t.Fatalf("%d notifications pushed unacked, window %d", len(unacked), window)
		}
		if len(unacked) == window || len(got) == len(stored) {
			ack()
		}
	}
	for i := range stored {
		if got[i] != stored[i] {
			t.Fatalf("notification %d: got %s, want %s (the order stored)", i, got[i], stored[i])
		}
	}
	if left, err := h.db.PendingNotifications(ctx, "ann@example.com", nil); err != nil || len(left) != 0 {
		t.Fatalf("after every ack: %d still queued (%v)", len(left), err)
	}
	phone.StillOpen()
}
