package jetstream

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"

	"github.com/presence-service/presence/core"
	"github.com/presence-service/presence/internal/natstest"
)

// A second try of a batch that the first stored is refused as a
// duplicate and answered with the first's sequences; nothing is stored
// twice. This is what a try after a lost answer meets when the lost
// leader had stored the batch (TestABatchInFlightToALostLeaderIsAnsweredOK
// loses one for real, but cannot choose which way the first try ends).
func TestStoreBatchTwiceStoresOnce(t *testing.T) {
	c := natstest.Start(t, 3)
	js, err := natsjs.New(c.Connect())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, err := OpenNotifications(ctx, js, nil, NotificationConfig{Replicas: 3}); err != nil {
		t.Fatal(err)
	}
	batch := func(n int) []*nats.Msg {
		msgs := make([]*nats.Msg, n)
		for i := range msgs {
			id := core.NewNotificationID()
			msgs[i] = &nats.Msg{Subject: notificationSubject("user", 1, fmt.Sprint("p", i%2)), Data: []byte(id)}
			if i == 0 { // as AddNotifications: one id names the batch
				msgs[i].Header = nats.Header{natsjs.MsgIDHeader: []string{id}}
			}
		}
		return msgs
	}
	for _, size := range []int{1, 3} {
		msgs := batch(size)
		first, err := storeBatch(ctx, js, msgs)
		if err != nil {
			t.Fatal(err)
		}
		info0, _ := js.Stream(ctx, NotificationStream)
		again, err := storeBatch(ctx, js, msgs)
		if err != nil {
			t.Fatalf("batch of %d sent again: %v", size, err)
		}
		if again != first {
			t.Errorf("batch of %d sent again: first sequence %d, stored at %d", size, again, first)
		}
		info1, _ := js.Stream(ctx, NotificationStream)
		if a, b := info0.CachedInfo().State.LastSeq, info1.CachedInfo().State.LastSeq; a != b {
			t.Errorf("batch of %d sent again: the stream went from sequence %d to %d", size, a, b)
		}
		// A batch of new ids is stored after it.
		next, err := storeBatch(ctx, js, batch(size))
		if err != nil || next != first+uint64(size) {
			t.Errorf("next batch of %d: stored at %d (%v), want %d", size, next, err, first+uint64(size))
		}
	}
	// An id never stored is answered as such, and the probe stores nothing.
	m := batch(1)[0]
	if _, stored, err := storedAt(ctx, js, m); err != nil || stored {
		t.Fatalf("an id never stored: stored %v, %v", stored, err)
	}
	info, _ := js.Stream(ctx, NotificationStream)
	if got := info.CachedInfo().State.Msgs; got != 8 {
		t.Errorf("stream holds %d messages, want 8", got)
	}
}
