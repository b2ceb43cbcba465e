package main

import (
	"fmt"
	"sync"
	"testing"
	"time"

	pjs "github.com/presence-service/presence/core/jetstream"
	"github.com/presence-service/presence/internal/presencetest"
)

// loadUsers grants app to n users through the pages of the nodes in
// turn and connects each user's device to the next node: user i on
// nodes[i%3]. It returns the users and their devices.
func loadUsers(t *testing.T, nodes [3]*node, app int64, n int, l *loadLedger) ([]*loadUser, []*loadDevice) {
	t.Helper()
	users := make([]*loadUser, n)
	devices := make([]*loadDevice, n)
	for i := range devices {
		nd := nodes[i%len(nodes)]
		users[i] = nd.loadUser(i, app)
		devices[i] = newDevice(users[i], "phone", app, l)
		if err := devices[i].connect(nd.srv.HTTPAddr); err != nil {
			t.Fatal(err)
		}
	}
	return users, devices
}

// ackDuringElection is what a device's ack may still be answered, in
// the rare case that the read of what waits next (after the ack) was in
// flight to the lost server: it waits for JetStream's 5 s request bound.
// The item stays queued and is pushed again on the device's next connect.
const ackDuringElection = `{"result":false,"errno":50,"reason":"internal error"}`

// statusGapBound is how long the app may go without hearing from a
// device while a NATS server is lost. A device's requests are answered
// in order, so its statuses wait behind an ack in flight to the lost
// stream leader, which is tried again after core/jetstream's 1 s
// ackAttempt; 2 s more are slack for a loaded machine.
const statusGapBound = 3 * time.Second

// PROTOCOL §10 and issue 19: one NATS server of three lost under load
// loses nothing acknowledged and stops no node from serving.
//
// The lost server is the hardest one to lose: node A's own server, made
// the leader of the notification stream first, so that the node fails
// over and the stream elects a new leader at once. The servers run in
// this process, so the loss is natstest's Kill (the server shuts down and
// drops its clients and routes), not a SIGKILL of a process; its
// replicas are gone as they would be.
//
// Under load: six devices on the three nodes set their status every
// 50 ms and ack every notification pushed to them, an app channel on
// node A records the statuses, and three writers, one per node, POST
// notifications to the devices. Then:
//   - every notification answered 200 reaches its connected device,
//     without a reconnect, and each node answers 200s again after the
//     loss;
//   - the app keeps getting every device's statuses: none goes unheard
//     for more than statusGapBound;
//   - no device or app channel is ended, no status is answered anything
//     but {"result":true} (so never errno -4), no node's /healthz is
//     without a 200 for linkLossDelay or more (the link-loss trip never
//     fires: a client fails over in milliseconds), and every node takes
//     new devices and channels afterwards.
//
// What the loss may cost: a POST's batch in flight to the lost leader
// is sent again after core/jetstream's 1 s publishAttempt (with the same
// message ids: refused as a duplicate if the first try was stored) and
// answered 200, so no POST is refused; a device's ack in flight is tried
// again after 1 s, and the device's statuses sent behind it wait that
// long.
func TestClusterNATSServerLostUnderLoad(t *testing.T) {
	nodes, nats := startClusterWith(t, loadLimits)
	a := nodes[0]
	app, key := a.newApp("beer.example")
	ledger := newLedger()
	users, devices := loadUsers(t, nodes, app, 6, ledger)
	watch := recordFeed(presencetest.OpenFeed(t, a.ws(fmt.Sprint("/", app)), key))

	victim := nats.Index(a.srv.backend.nats.ConnectedServerName())
	if victim < 0 {
		t.Fatalf("node A is connected to %q, none of the servers", a.srv.backend.nats.ConnectedServerName())
	}
	nats.MoveStreamLeader(pjs.NotificationStream, victim)

	stop := make(chan struct{})
	var wg sync.WaitGroup
	defer func() {
		select {
		case <-stop:
		default:
			close(stop)
		}
		wg.Wait()
	}()
	health := watchHealth(stop, &wg, nodes[:])
	for _, d := range devices {
		wg.Go(func() {
			if err := d.run(stop, 50*time.Millisecond); err != nil {
				ledger.problem("%v", err)
			}
		})
	}
	for w, n := range nodes {
		wg.Go(func() { ledger.write(stop, 30*time.Millisecond, w, []string{n.srv.HTTPAddr}, app, key, users, 1) })
	}
	waitFor(t, 30*time.Second, "load before the loss (30 notifications stored, 30 statuses seen)", func() bool {
		posted, _ := ledger.counts()
		return posted >= 30 && len(watch.snapshot()) >= 30
	})

	before := lastStatuses(devices)
	ledger.phase.Store(1)
	measured := time.Now()
	nats.Kill(victim)
	lost := time.Now()
	if !eventually(60*time.Second, func() bool {
		return ledger.okAfterLoss(len(nodes), 10) && watch.saw(devices, before)
	}) {
		t.Fatalf("within 60 s of the loss, want 10 POSTs answered 200 by each node (have %v) and a newer status of every device seen by the app: %s",
			ledger.okAfterCounts(), watch.progress(devices))
	}
	t.Logf("load went on %v after losing server %s", time.Since(lost).Round(time.Millisecond), nats.Name(victim))
	close(stop)
	wg.Wait()

	// At once, not on a next connect: a node that lost its server may
	// have missed the announcements of batches stored meanwhile.
	eventually(20*time.Second, func() bool { return len(ledger.missing(users...)) == 0 })
	if missing := ledger.missing(users...); len(missing) > 0 {
		t.Fatalf("%d notifications answered 200 did not reach their connected device within 20 s: %v", len(missing), missing)
	}
	for _, p := range ledger.problemsFrom(0) {
		t.Error(p)
	}
	refused := ledger.refusals()
	posted, _ := ledger.counts()
	t.Logf("%d notifications answered 200, %d refused", posted, len(refused))
	for _, r := range refused {
		t.Errorf("a POST answered %s, want 200 (a batch in flight to the lost leader is sent again)", r)
	}
	for _, d := range devices {
		d.check(t, ackDuringElection)
	}
	if err := watch.failed(); err != nil {
		t.Errorf("node A's app channel ended: %v", err)
	}
	if gap := watch.longestGap(devices, measured); gap > statusGapBound {
		t.Errorf("a device's statuses did not reach the app for %v after the loss, more than %v", gap, statusGapBound)
	} else {
		t.Logf("longest time a device's status did not reach the app after the loss: %v", gap)
	}
	if i, d, answer := health.worst(); d >= linkLossDelay {
		t.Errorf("node %s's /healthz had no 200 for %v (%s): a node stopped serving", nodeName(i), d, answer)
	} else {
		t.Logf("longest /healthz without a 200: node %s, %v (%s)", nodeName(i), d, answer)
	}

	// Every node still takes new devices and app channels.
	for i, n := range nodes {
		presencetest.OpenFeed(t, n.ws(fmt.Sprint("/", app)), key)
		phone, sid := n.device(fmt.Sprintf("late%d@example.com", i), "phone")
		status(phone, sid, "online", "late")
	}
}
