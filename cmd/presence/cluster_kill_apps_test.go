package main

import (
	"fmt"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/presence-service/presence/internal/presencetest"
)

// PROTOCOL §10: a dead node's "app channels reconnect elsewhere and
// receive what waited meanwhile". An app's only channels, a WebSocket
// channel and an XMPP component, are on node A; devices on B and C set
// numbered statuses ("#N", growing) all along, and a user's only device
// is on A. A is SIGKILLed; the statuses go on changing on B and C; the
// app connects its channel to B (1 s after the SIGKILL, before any node
// noticed the death; or past B's notice and the grace, when what waited
// is in the cluster's queue, A's user offline) and, once that one got
// what waited, its component to C. Then:
//   - the channel on B gets, with no device sending anything, each
//     device's newest status (PROTOCOL §3: the queue), and A's user
//     offline (from the queue, or live once B drops A's part), then the
//     live updates once the load goes on;
//   - the component on C gets the live updates;
//   - neither ever shows a PUID older than what it showed before (nor
//     older than what A's channels had shown), A's user shown again
//     after its offline, or a user of B or C offline: repeats of the
//     current status are allowed (docs/cluster.md), going back is not.
func TestClusterSIGKILLAppReconnectsAtOnce(t *testing.T) { appChannelsAfterSIGKILL(t, true) }

// TestClusterSIGKILLAppReconnectsPastTheGrace is
// TestClusterSIGKILLAppReconnectsAtOnce with the app back only once B
// has noticed the death and the grace has passed.
func TestClusterSIGKILLAppReconnectsPastTheGrace(t *testing.T) { appChannelsAfterSIGKILL(t, false) }

// appChannelsAfterSIGKILL is the test of
// TestClusterSIGKILLAppReconnectsAtOnce; atOnce, the app comes back 1 s
// after the SIGKILL, before any node noticed the death (the nodes that
// kept what they routed while A held the app give it), else past B's
// notice and the grace (what waited is in the cluster's queue).
func appChannelsAfterSIGKILL(t *testing.T, atOnce bool) {
	const (
		grace       = 2 * time.Second
		statusEvery = 100 * time.Millisecond // per device
	)
	nodes, procs := startProcCluster(t, grace, loadLimits)
	a, b, c := nodes[0], nodes[1], nodes[2]
	app, key := b.newApp("beer.example")
	path := fmt.Sprint("/", app)

	// The app's only channels, both on node A, before any status.
	feedOnA := recordFeed(presencetest.OpenFeed(t, a.ws(path), key))
	compOnA := recordComponent(a.componentSession(app, key))

	l := newLedger()
	var devices []*loadDevice // on B and C
	for i := range 6 {
		n := nodes[1+i%2]
		d := newDevice(n.loadUser(i, app), "phone", app, l)
		if err := d.connect(n.srv.HTTPAddr); err != nil {
			t.Fatal(err)
		}
		devices = append(devices, d)
	}
	goneUser := a.loadUser(len(devices), app)
	gone := newDevice(goneUser, "phone", app, l) // dies with A
	if err := gone.connect(a.srv.HTTPAddr); err != nil {
		t.Fatal(err)
	}
	if err := gone.status(); err != nil {
		t.Fatal(err)
	}

	// load runs the devices' statuses until the returned stop is called,
	// which checks that every status was answered true.
	load := func() (stop func()) {
		done := make(chan struct{})
		var wg sync.WaitGroup
		for _, d := range devices {
			wg.Go(func() {
				if err := d.run(done, statusEvery); err != nil {
					l.problem("%v", err)
				}
			})
		}
		return sync.OnceFunc(func() {
			close(done)
			wg.Wait()
			for _, d := range devices {
				d.check(t, "")
			}
			for _, p := range l.problemsFrom(0) {
				t.Error(p)
			}
		})
	}
	stopLoad := load()
	t.Cleanup(stopLoad)
	started := lastStatuses(devices)
	started[goneUser.puid] = 0
	for name, log := range map[string]*appLog{"channel on A": feedOnA, "component on A": compOnA} {
		log.waitUntil(t, 20*time.Second, "the load on the "+name, func([]seenUpdate) bool { return log.saw(append(devices, gone), started) })
	}

	procs[0].cmd.Process.Signal(syscall.SIGKILL)
	procs[0].cmd.Wait()
	killAt := time.Now()
	shownOnA := feedOnA.newest()
	for puid, n := range compOnA.newest() {
		shownOnA[puid] = max(shownOnA[puid], n)
	}

	// A while later, the statuses changed on B and C all along.
	if atOnce {
		time.Sleep(time.Until(killAt.Add(time.Second)))
		if procs[1].logged(noticedDeath) {
			t.Fatal("node B noticed the death within 1 s: the test no longer tries what it means to")
		}
	} else {
		noticed := procs[1].waitLog(t, noticedDeath, 15*time.Second)
		time.Sleep(time.Until(noticed.Add(grace + 2*time.Second)))
	}
	stopLoad()
	newest := lastStatuses(devices)

	// The channel on B: the queue, with no device sending anything.
	reconnected := time.Now()
	onB := recordFeed(presencetest.OpenFeed(t, b.ws(path), key))
	// A's user goes offline within 10 s and the grace of the SIGKILL:
	// from the queue past the grace, live on B at once.
	onB.waitUntil(t, time.Until(killAt.Add(10*time.Second+grace+5*time.Second)), "each device's newest status and A's user offline", func(seen []seenUpdate) bool {
		shows := map[string]seenUpdate{}
		for _, u := range seen {
			shows[u.UID] = u
		}
		for _, d := range devices {
			if shows[d.user.puid].number() != newest[d.user.puid] {
				return false
			}
		}
		return shows[goneUser.puid].Status == "offline"
	})
	fromQueue := len(onB.snapshot())

	// The component on C, then live updates to both.
	onC := recordComponent(c.componentSession(app, key))
	stopLoad = load()
	t.Cleanup(stopLoad)
	for name, log := range map[string]*appLog{"channel on B": onB, "component on C": onC} {
		log.waitUntil(t, 20*time.Second, "live updates on the "+name, func([]seenUpdate) bool { return log.saw(devices, newest) })
	}
	stopLoad()

	for name, log := range map[string]*appLog{"channel on B": onB, "component on C": onC} {
		if err := log.failed(); err != nil {
			t.Errorf("the %s: %v", name, err)
		}
		shown := map[string]seenUpdate{}
		for i, u := range log.snapshot() {
			before, ok := shown[u.UID]
			switch {
			case u.UID == goneUser.puid && ok && before.Status == "offline" && u.Status != "offline":
				t.Errorf("the %s showed A's user, whose only device died with A, as %s %q after offline", name, u.Status, u.Message)
			case u.UID != goneUser.puid && u.Status == "offline":
				t.Errorf("the %s showed %s offline (update %d): its device on B or C never left", name, u.UID, i)
			case u.Status == "offline":
			case u.number() < shownOnA[u.UID]:
				t.Errorf("the %s showed %s at %s (update %d), older than #%d, shown on node A before the SIGKILL", name, u.UID, u.Message, i, shownOnA[u.UID])
			case ok && before.Status != "offline" && u.number() < before.number():
				t.Errorf("the %s showed %s at %s (update %d) after %s: an older status", name, u.UID, u.Message, i, before.Message)
			}
			shown[u.UID] = u
		}
	}
	t.Logf("the channel on B got %d updates %v after the SIGKILL, then %d live; the component on C %d",
		fromQueue, reconnected.Sub(killAt).Round(time.Millisecond), len(onB.snapshot())-fromQueue, len(onC.snapshot()))
}
