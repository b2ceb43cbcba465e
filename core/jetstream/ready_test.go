package jetstream_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	natsjs "github.com/nats-io/nats.go/jetstream"

	"github.com/presence-service/presence/core"
	"github.com/presence-service/presence/core/jetstream"
	"github.com/presence-service/presence/internal/natstest"
)

// Queues opened right after the NATS servers start, before JetStream has
// elected its meta leader, wait for it and then work: a node started
// together with its servers serves instead of failing at start.
func TestOpenBeforeJetStreamIsReady(t *testing.T) {
	c := natstest.StartUnready(t, 3)
	js, err := natsjs.New(c.Connect())
	if err != nil {
		t.Fatal(err)
	}
	var waits atomic.Int32
	waiting := func(err error) {
		waits.Add(1)
		t.Logf("waiting for JetStream: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	g := &grants{}
	n, err := jetstream.OpenNotifications(ctx, js, g, jetstream.NotificationConfig{Replicas: 3, Waiting: waiting})
	if err != nil {
		t.Fatalf("notifications opened before JetStream was ready: %v", err)
	}
	if _, err := jetstream.OpenStatuses(ctx, js, g, jetstream.StatusConfig{Replicas: 3, Waiting: waiting}); err != nil {
		t.Fatalf("statuses opened before JetStream was ready: %v", err)
	}
	t.Logf("reported waiting %d times", waits.Load())

	puid := g.add("alice", 1, "pa")
	added, _, err := n.AddNotifications(ctx, 1, []core.NotificationInput{{PUID: puid, Message: "hi"}}, time.Now(), 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	p, err := n.PendingNotifications(ctx, "alice", nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(p) != 1 || p[0].ID != added[0].ID {
		t.Fatalf("pending = %v, want the added %s", ids(p), added[0].ID)
	}
}

// A start whose limit passes while JetStream is still not ready ends with
// ErrNotReady, not a bare deadline.
func TestOpenNotReadyWithinLimit(t *testing.T) {
	c := natstest.StartUnready(t, 3)
	js, err := natsjs.New(c.Connect())
	if err != nil {
		t.Fatal(err)
	}
	// Five replicas on three servers are never placed: JetStream answers
	// "no suitable peers", which is retried until the limit.
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Second)
	defer cancel()
	_, err = jetstream.OpenNotifications(ctx, js, &grants{}, jetstream.NotificationConfig{Replicas: 5})
	if !errors.Is(err, jetstream.ErrNotReady) {
		t.Fatalf("err = %v, want ErrNotReady", err)
	}
	t.Log(err)
}
