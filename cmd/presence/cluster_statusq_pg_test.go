package main

import (
	"fmt"
	"testing"
	"time"

	"github.com/presence-service/presence/internal/pgtest"
	"github.com/presence-service/presence/internal/presencetest"
)

// waitNoAppChannels waits until the node holds no app channel: its last
// one has detached, so what it routes next waits in the cluster's queue.
func (n *node) waitNoAppChannels() {
	n.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for n.srv.backend.router.Metrics.AppChannels.Load() != 0 {
		if time.Now().After(deadline) {
			n.t.Fatal("the node still holds an app channel 10 s after its last one closed")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// PROTOCOL §3 and §10: a channel that attaches while PostgreSQL is away
// (on an app its node looked up less than appCacheTTL before) gets at
// once the status routed while the app had no channel, then live ones.
func TestClusterStatusQueueTakenWhilePostgresAway(t *testing.T) {
	pg := pgtest.Local(t) // the server the cluster's database is on; skips with PRESENCE_PG_URL
	nodes := startCluster(t)
	a, b := nodes[0], nodes[1]
	app, key := b.newApp("beer.example")
	appID := fmt.Sprint(app)
	ann := presencetest.NewBrowser(t, a.http(""))
	ann.Login("ann@example.com")
	puid := ann.Allow(appID, "https://beer.example/", "ann")
	phone, sid := a.device("ann@example.com", "phone", app)

	// B takes a queue holding ann's PUID once, PostgreSQL up.
	status(phone, sid, "online", "first")
	b.waitShows(app, puid, "first")
	feed := presencetest.OpenFeed(t, b.ws("/"+appID), key)
	feed.Expect(puid, "online", "first")
	feed.Conn.Close()
	b.waitNoAppChannels()

	restart := stopPostgres(t, pg)
	status(phone, sid, "unavailable", "PostgreSQL away")
	b.waitShows(app, puid, "PostgreSQL away")
	attached := time.Now()
	again := presencetest.OpenFeed(t, b.ws("/"+appID), key)
	again.Expect(puid, "unavailable", "PostgreSQL away")
	if waited := time.Since(attached); waited > registryFailBound {
		t.Fatalf("the waiting status came %v after the attach, want it within %v", waited, registryFailBound)
	}
	status(phone, sid, "online", "live")
	again.Expect(puid, "online", "live")

	restart()
}
