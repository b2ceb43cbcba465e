package main

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/presence-service/presence/internal/natstest"
	"github.com/presence-service/presence/internal/pgtest"
	"github.com/presence-service/presence/internal/presencetest"
)

// startProcCluster runs three Presence nodes as separate processes of
// one binary (so that a test can SIGKILL one), on one embedded
// three-server NATS cluster and one PostgreSQL, as startCluster does in
// process. grace is device.disconnect_grace. It skips without
// PRESENCE_CLUSTER.
func startProcCluster(t *testing.T, grace time.Duration, extra string) ([3]*node, [3]*process) {
	t.Helper()
	pgURL := pgtest.Database(t)
	bin := buildBinary(t)
	nats := natstest.Start(t, 3)
	dataDir := t.TempDir()
	writeNodeKey(t, dataDir)
	var nodes [3]*node
	var procs [3]*process
	for i := range nodes {
		config := clusterConfigGrace(t, fmt.Sprintf("node-%c", 'a'+i), dataDir, nats.URL(), pgURL, grace.String(), extra)
		procs[i] = spawn(t, bin, config) // one at a time: the first makes the data folder's dev secret
		nodes[i] = &node{t: t, config: config, srv: &server{HTTPAddr: procs[i].addr, XMPPAddr: procs[i].xmppAddr}}
	}
	return nodes, procs
}

// What the users of TestClusterSIGKILLUnderLoad do when node A dies.
type killRole int

const (
	stays killRole = iota // a device on B or C: must never drop
	back                  // a device on A that connects again, on B or C, as soon as it is dropped
	late                  // one that connects again once node B has noticed A's death, within the grace
	away                  // one that stays away (its user may have another device, on C)
)

// noticedDeath is what a node logs when it takes another for dead.
const noticedDeath = "a node stopped answering"

// PROTOCOL §10, issue 19: SIGKILL of node A under load. Devices on A set
// their status and ack their notifications, an app channel on B watches,
// and apps POST notifications to B and C, also for A's users, before,
// during and after the kill. After it, some of A's devices connect again
// on B or C at once, some once B has noticed the death (within the
// grace), some not at all. The app sees no offline for the users who came
// back, or who still have a device on C, and exactly one offline, within
// 10 s and the grace of the kill, for each of the others. Every
// notification answered 200 is pushed to a device of its user (to those
// who stayed away, when they connect later), and none is pushed again on
// a connect made after its ack was answered.
func TestClusterSIGKILLUnderLoad(t *testing.T) {
	const (
		// Death is noticed 6 to 8 s after A's last heartbeat; the grace
		// counts from then. 5 s leaves the late devices (reconnecting
		// when B says it noticed) ample time on a loaded machine.
		grace       = 5 * time.Second
		statusEvery = 700 * time.Millisecond // per device
		postEvery   = 100 * time.Millisecond // per writer, 2 notifications a POST
		writers     = 4
	)
	nodes, procs := startProcCluster(t, grace, loadLimits)
	a, b, c := nodes[0], nodes[1], nodes[2]
	app, key := b.newApp("beer.example")

	// The users, each granted on a page of B or C, by role.
	groups := []struct {
		role  killRole
		count int
		alsoC bool // a second device, on node C, that stays
	}{
		{back, 10, false},
		{late, 6, false},
		{away, 10, false},
		{away, 6, true}, // their device on C keeps them shown
		{stays, 4, false},
		{stays, 1, false}, // the fence: driven by the test itself, below
	}
	var users []*loadUser
	roleOf := map[*loadUser]killRole{}
	alsoC := map[*loadUser]bool{}
	for _, g := range groups {
		for range g.count {
			u := nodes[1+len(users)%2].loadUser(len(users), app)
			users = append(users, u)
			roleOf[u], alsoC[u] = g.role, g.alsoC
		}
	}
	fenceUser := users[len(users)-1]
	watched := users[:len(users)-1]
	feed := recordFeed(presencetest.OpenFeed(t, b.ws(fmt.Sprint("/", app)), key))
	l := newLedger()

	// Every device connects and shows its user online before the load.
	type placed struct {
		d    *loadDevice
		role killRole
		onA  bool
	}
	var devices []placed
	for _, u := range watched {
		switch {
		case roleOf[u] == stays:
			devices = append(devices, placed{newDevice(u, "desk", app, l), stays, false})
		default:
			devices = append(devices, placed{newDevice(u, "phone", app, l), roleOf[u], true})
			if alsoC[u] {
				devices = append(devices, placed{newDevice(u, "laptop", app, l), stays, false})
			}
		}
	}
	for i, p := range devices {
		addr := nodes[1+i%2].srv.HTTPAddr
		if p.onA {
			addr = a.srv.HTTPAddr
		} else if p.d.id == "laptop" {
			addr = c.srv.HTTPAddr
		}
		if err := p.d.connect(addr); err != nil {
			t.Fatal(err)
		}
		if err := p.d.status(); err != nil {
			t.Fatal(err)
		}
	}
	fence, fenceSID := c.device(fenceUser.email, "desk", app)
	status(fence, fenceSID, "online", "hello")
	feed.waitUntil(t, 20*time.Second, "every user online", func(seen []seenUpdate) bool {
		shown := map[string]bool{}
		for _, u := range seen {
			shown[u.UID] = u.Status != "offline"
		}
		for _, u := range users {
			if !shown[u.puid] {
				return false
			}
		}
		return true
	})

	// The load: every device sets its status and acks; writers POST to
	// B and C. A device dropped by the kill does what its role says.
	stop := make(chan struct{})
	var killed atomic.Bool
	lateGo := make(chan struct{})
	type backAt struct {
		u  *loadUser
		at time.Time
	}
	returned := make(chan backAt, len(devices))
	var wg sync.WaitGroup
	for i, p := range devices {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d, role := p.d, p.role
			defer d.close()
			for {
				err := d.run(stop, statusEvery)
				if err == nil {
					d.check(t, "") // every status and ack answered true
					return
				}
				if role == stays || !killed.Load() || !errors.Is(err, errDropped) {
					l.problem("%v", err)
					return
				}
				switch role {
				case away:
					return
				case late:
					select {
					case <-lateGo:
					case <-stop:
						return
					}
				}
				d.close()
				if err := d.connect(nodes[1+i%2].srv.HTTPAddr); err != nil {
					l.problem("%v", err)
					return
				}
				if err := d.status(); err != nil {
					l.problem("%v", err)
					return
				}
				returned <- backAt{d.user, time.Now()}
				role = stays
			}
		}()
	}
	addrs := []string{b.srv.HTTPAddr, c.srv.HTTPAddr}
	for w := range writers {
		wg.Go(func() { l.write(stop, postEvery, w, addrs, app, key, watched, 2) })
	}
	stopLoad := sync.OnceFunc(func() { close(stop); wg.Wait() })
	t.Cleanup(stopLoad)

	// SIGKILL node A mid-load: once notifications are stored and acked
	// (a count, not a timed guess).
	waitFor(t, 30*time.Second, "load before the kill (150 notifications answered 200, 30 acks answered)", func() bool {
		posted, acks := l.counts()
		return posted >= 150 && acks >= 30
	})
	for i, p := range procs[1:] {
		if p.logged(noticedDeath) {
			t.Fatalf("node %c took a node for dead before any was killed", 'b'+i)
		}
	}
	killed.Store(true)
	killAt := time.Now()
	procs[0].cmd.Process.Signal(syscall.SIGKILL)
	procs[0].cmd.Wait()

	waitBack := func(role killRole, within time.Duration) map[*loadUser]time.Time {
		t.Helper()
		want, got := 0, map[*loadUser]time.Time{}
		for _, p := range devices {
			if p.role == role {
				want++
			}
		}
		deadline := time.After(within)
		for len(got) < want {
			select {
			case r := <-returned:
				got[r.u] = r.at
			case <-deadline:
				t.Fatalf("%d of %d devices back on B or C within %v: %v", len(got), want, within, l.problemsFrom(0))
			}
		}
		return got
	}
	waitBack(back, 10*time.Second)
	noticed := procs[1].waitLog(t, noticedDeath, 15*time.Second)
	if took := noticed.Sub(killAt); took > 10*time.Second {
		t.Errorf("node B noticed node A's death %v after the SIGKILL, want within 10 s", took)
	}
	close(lateGo)
	lateBack := waitBack(late, grace)

	// The app: one offline for each user not back, within 10 s and the
	// grace; then a fence (an update sent after it, through C) so that
	// nothing the death caused is still on its way.
	offlineBy := killAt.Add(10*time.Second + grace)
	feed.waitUntil(t, time.Until(offlineBy), "an offline for each user who stayed away", func(seen []seenUpdate) bool {
		off := map[string]bool{}
		for _, u := range seen {
			if u.Status == "offline" {
				off[u.UID] = true
			}
		}
		for _, u := range watched {
			if roleOf[u] == away && !alsoC[u] && !off[u.puid] {
				return false
			}
		}
		return true
	})
	status(fence, fenceSID, "unavailable", "fence")
	feed.waitUntil(t, 10*time.Second, "the fence", func(seen []seenUpdate) bool {
		for _, u := range seen {
			if u.UID == fenceUser.puid && u.Message == "fence" {
				return true
			}
		}
		return false
	})
	stopLoad()

	offlines := map[string][]time.Time{}
	shownAfterOffline := map[string]bool{}
	var latestOffline time.Time
	for _, u := range feed.snapshot() {
		if u.Status == "offline" {
			offlines[u.UID] = append(offlines[u.UID], u.at)
			latestOffline = u.at
		} else if len(offlines[u.UID]) > 0 {
			shownAfterOffline[u.UID] = true
		}
	}
	for _, u := range watched {
		got := offlines[u.puid]
		switch {
		case roleOf[u] == away && !alsoC[u]:
			if len(got) != 1 || shownAfterOffline[u.puid] {
				t.Errorf("%s stayed away: the app saw %d offline (shown again after: %v), want exactly one", u.email, len(got), shownAfterOffline[u.puid])
			} else if got[0].Before(killAt.Add(grace)) {
				t.Errorf("%s offline %v after the SIGKILL: before the grace", u.email, got[0].Sub(killAt))
			}
		case len(got) > 0:
			t.Errorf("%s (%s) was shown offline %v after the SIGKILL; node B noticed the death after %v, the late devices were back by %v",
				u.email, roleName(roleOf[u], alsoC[u]), got[0].Sub(killAt), noticed.Sub(killAt), latest(lateBack).Sub(killAt))
		}
	}

	// The ledger: every notification answered 200 is pushed to a device
	// of its user: now, to a device that connects for it, for those who
	// stayed away and for what the others had not yet been pushed. Once
	// it has acked all, a new connect gets nothing.
	problems := l.problemsFrom(0)
	for _, p := range problems {
		t.Error(p)
	}
	for _, r := range l.refusals() { // B and C are up: every POST is stored
		t.Errorf("a POST answered %s", r)
	}
	posted, _ := l.counts()
	for u, n := range l.perUser() {
		if n >= 100 {
			t.Fatalf("%s was sent %d notifications: as many as notifications.window and queue_size; lower the load", u.email, n)
		}
	}
	for i, u := range watched {
		addr := nodes[1+i%2].srv.HTTPAddr
		d := newDevice(u, "drain", app, l)
		if err := d.connect(addr); err != nil {
			t.Fatal(err)
		}
		// The queued items are pushed after the connect's answer: a ping
		// answered shows what had been pushed before it. At least one:
		// what other devices were pushed and did not ack before the load
		// stopped is pushed here again, to be acked.
		for deadline := time.Now().Add(10 * time.Second); ; {
			if err := d.ping(); err != nil {
				t.Fatal(err)
			}
			if len(l.missing(u)) == 0 {
				break
			}
			if time.Now().After(deadline) {
				missing := l.missing(u)
				t.Fatalf("%s (%s): %d notifications answered 200 were never pushed: %v", u.email, roleName(roleOf[u], alsoC[u]), len(missing), missing)
			}
		}
		if err := d.ackAll(); err != nil {
			t.Fatal(err)
		}
		if err := d.ping(); err != nil { // answered after the acks
			t.Fatal(err)
		}
		d.check(t, "")
		d.close()
		again := newDevice(u, "drain", app, l)
		if err := again.connect(addr); err != nil {
			t.Fatal(err)
		}
		if err := again.ping(); err != nil {
			t.Fatal(err)
		}
		if pushed := again.unackedNow(); len(pushed) > 0 {
			t.Errorf("%s: after every notification was acked, a new connect was pushed %v", u.email, pushed)
		}
		again.close()
	}
	for _, p := range l.problemsFrom(len(problems)) {
		t.Error(p)
	}
	t.Logf("%d notifications answered 200, all pushed; after the SIGKILL, B noticed the death in %v, the late devices were back %v after that, the last offline came in %v",
		posted, noticed.Sub(killAt).Round(time.Millisecond), latest(lateBack).Sub(noticed).Round(time.Millisecond), latestOffline.Sub(killAt).Round(time.Millisecond))
}

func roleName(r killRole, alsoOnC bool) string {
	switch {
	case r == back:
		return "back at once"
	case r == late:
		return "back once the death was noticed"
	case r == away && alsoOnC:
		return "away, with a device on C"
	case r == away:
		return "away"
	}
	return "on B or C"
}

func latest[K comparable](times map[K]time.Time) time.Time {
	var last time.Time
	for _, at := range times {
		if at.After(last) {
			last = at
		}
	}
	return last
}
