package main

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/presence-service/presence/core"
	"github.com/presence-service/presence/internal/presencetest"
)

// waitShows waits until the node's router shows puid with message (its
// probes' answer): the node has applied that update.
func (n *node) waitShows(app int64, puid, message string) {
	n.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		res, err := n.srv.backend.router.Probe(context.Background(), core.AppID(app), []string{puid})
		if err == nil && res[0].Message == message {
			return
		}
		if time.Now().After(deadline) {
			n.t.Fatalf("the node shows %+v (%v), want %q", res, err, message)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// PROTOCOL §3 and §10 on three nodes: statuses routed on node A while the
// app has no channel anywhere wait in the cluster's queue, and the app's
// channel on node C gets the newest, once; a second channel, on node B,
// gets no older status before the live ones; once both have left, the
// next channel gets what was routed meanwhile, the newest alone, and then
// live updates, nothing twice.
func TestClusterAppStatusQueueOverWebSockets(t *testing.T) {
	nodes := startCluster(t)
	a, b, c := nodes[0], nodes[1], nodes[2]
	app, key := b.newApp("beer.example")
	appID := fmt.Sprint(app)
	ann := presencetest.NewBrowser(t, a.http(""))
	ann.Login("ann@example.com")
	puid := ann.Allow(appID, "https://beer.example/", "ann")
	phone, sid := a.device("ann@example.com", "phone", app)

	status(phone, sid, "online", "first")
	status(phone, sid, "unavailable", "newest")
	c.waitShows(app, puid, "newest") // else C could send "first" from the queue, "newest" live
	onC := presencetest.OpenFeed(t, c.ws("/"+appID), key)
	onC.Expect(puid, "unavailable", "newest")

	// While C holds the app, a channel on B may get the current status
	// again (it cannot tell a holder that died a moment ago from one that
	// lives), never an older one; then the live updates.
	onB := presencetest.OpenFeed(t, b.ws("/"+appID), key)
	status(phone, sid, "online", "live")
	for {
		u := onB.Next()
		if u.Status == "online" && u.Message == "live" {
			break
		}
		if u.UID != puid || u.Status != "unavailable" || u.Message != "newest" {
			t.Fatalf("the channel on B got %+v before the live update, not the current status", u)
		}
	}
	onC.Expect(puid, "online", "live")

	// Both leave; two statuses later, a channel on A gets the newest,
	// then the next live one.
	onB.Conn.Close()
	onC.Conn.Close()
	status(phone, sid, "unavailable", "while away")
	status(phone, sid, "online", "back")
	again := presencetest.OpenFeed(t, a.ws("/"+appID), key)
	again.Expect(puid, "online", "back")
	status(phone, sid, "unavailable", "after")
	again.Expect(puid, "unavailable", "after")
}
