package ws_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/presence-service/presence/core"
	"github.com/presence-service/presence/ws"
)

// A device that reads everything it is sent stays connected however its
// frames were written. Pushes queued while a writer is at work go out in
// one batch, under a deadline (the write may wait for the socket); that
// deadline must not outlive the batch. Before, it stayed on the socket,
// and the next answer written once it had passed failed: the server
// ended the session with no errno and no close frame, and the device saw
// its connection end in the middle of a healthy session.
func TestDeviceOutlivesTheDeadlineOfABatchedWrite(t *testing.T) {
	const writeWait = 50 * time.Millisecond
	ws.SetDeviceWriteWait(t, writeWait)
	h := newHarness(t, nil)
	puid := h.grant("ann@example.com", h.app)
	d := h.dialRaw("ann@example.com")
	for round := range 3 {
		// One Notify pushes its whole batch in one go: the first push
		// starts a writer, the rest queue behind it and go out together.
		items := make([]core.NotificationInput, 20)
		for i := range items {
			items[i] = core.NotificationInput{PUID: puid, Message: fmt.Sprintf("round %d, item %d", round, i)}
		}
		ns, _, err := h.router.Notify(context.Background(), h.app, items)
		if err != nil {
			t.Fatal(err)
		}
		ids := make([]string, len(ns))
		for i, n := range ns {
			ids[i] = n.ID
			if got := readFrame(t, d.br); !strings.Contains(got, `"id":"`+n.ID+`"`) {
				t.Fatalf("round %d: push %d: %s", round, i, got)
			}
		}
		// Past the batch's deadline, the device is still served.
		time.Sleep(4 * writeWait)
		d.c.Write(maskedText(`{"type":"ack","session_id":"` + d.session + `","ids":["` + strings.Join(ids, `","`) + `"]}`))
		if got := readFrame(t, d.br); got != `{"result":true}` {
			t.Fatalf("round %d: ack answered %s", round, got)
		}
		time.Sleep(4 * writeWait)
		d.c.Write(maskedText(`{"type":"ping"}`))
		if got := readFrame(t, d.br); got != `{"result":true}` {
			t.Fatalf("round %d: ping answered %s", round, got)
		}
	}
}
