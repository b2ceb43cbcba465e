package core_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/presence-service/presence/core"
)

// deafBus is a LocalBus whose subscribers can be made deaf to stored
// notifications' announcements, as a node whose NATS link is down is.
type deafBus struct {
	*core.LocalBus
	mu   sync.Mutex // guards: subs
	subs []*deafSubscriber
}

type deafSubscriber struct {
	core.BusSubscriber
	mu   sync.Mutex // guards: deaf
	deaf bool
}

func (d *deafSubscriber) DeliverNotifications(ns []core.Notification) {
	d.mu.Lock()
	deaf := d.deaf
	d.mu.Unlock()
	if !deaf {
		d.BusSubscriber.DeliverNotifications(ns)
	}
}

func (d *deafSubscriber) setDeaf(deaf bool) {
	d.mu.Lock()
	d.deaf = deaf
	d.mu.Unlock()
}

func (b *deafBus) Subscribe(s core.BusSubscriber) func() {
	ds := &deafSubscriber{BusSubscriber: s}
	b.mu.Lock()
	b.subs = append(b.subs, ds)
	b.mu.Unlock()
	return b.LocalBus.Subscribe(ds)
}

// A node that missed a stored batch's announcement (its bus link was
// down) pushes the batch to the device it holds once the link is back
// (CachesLost), not only on the device's next connect.
func TestCachesLostPushesNotificationsStoredMeanwhile(t *testing.T) {
	bus := &deafBus{LocalBus: core.NewLocalBus()}
	n := newNodes(t, core.Options{})
	n.deps.Bus = bus
	a, b := n.start(), n.start()
	app := activeApp(t, a)
	ann := core.Identity{Subject: "ann@example.com", Email: "ann@example.com"}
	g, err := a.Grant(context.Background(), ann, app, "Ann")
	if err != nil {
		t.Fatal(err)
	}
	phone := newDeviceSink()
	if _, _, err := b.Connect(context.Background(), core.ConnectRequest{Identity: ann, DeviceID: "phone", AppIDs: []core.AppID{app}, Sink: phone}); err != nil {
		t.Fatal(err)
	}
	nodeB := bus.subs[1]
	nodeB.setDeaf(true)
	if _, _, err := a.Notify(context.Background(), app, []core.NotificationInput{{PUID: g.PUID, Message: "while B was away"}}); err != nil {
		t.Fatal(err)
	}
	if got := phone.drain(); len(got) != 0 {
		t.Fatalf("a deaf node pushed %+v", got)
	}
	nodeB.setDeaf(false)
	nodeB.Invalidated(core.Invalidation{Kind: core.CachesLost})
	select {
	case got := <-phone.notes:
		if got.Message != "while B was away" {
			t.Fatalf("pushed %+v", got)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the notification stored while node B was away was not pushed after CachesLost")
	}
}
