package main

import "fmt"

// target is one server under test: Presence or the relay, with the
// identities the scenarios use on it.
type target struct {
	name    string // for the log: "presence", "relay", "node" or "cluster"
	side    string // sideMeasured or sideBaseline: its column in the report
	isRelay bool   // the bare relay: no /metrics, no XMPP
	addr    string // host:port; a cluster's first node
	pid     int    // the server's process; 0 when unknown
	// A cluster (-cluster): every node, and every process whose CPU
	// counts (nodes, NATS servers, PostgreSQL and its backends). Empty
	// for one server, which is addr and pid alone.
	nodes    []clusterNode
	cpuProcs []int
	cpuRoles []string   // "nodes", "NATS" or "PostgreSQL", by cpuProcs
	bin      string     // the presence binary it runs, when spawned
	apps     []appCred  // apps that receive in the status scenarios
	slow     appCred    // the app the slowapp scenario stalls
	users    []userCred // device users of the connect, status and mixed scenarios
	// notifyUsers receive the notify scenario's notifications. They are
	// kept apart because a device's connect pushes its user's queued
	// notifications: 100 per user would land in the next status run.
	notifyUsers []userCred
	d           *sourceDialer
	xmpp        xmppTarget // the component listener, if the target has one
	// grantErr says why users have no PUIDs (the grant pages failed); only
	// the connect scenario can run then, as its devices need no grant.
	grantErr error
}

// The sides of a report: the server measured, and its baseline in the
// same run (the relay; with -cluster, one node against the cluster).
const (
	sideMeasured = "presence"
	sideBaseline = "relay"
)

// clusterNode is one node of a cluster target.
type clusterNode struct {
	addr string
	pid  int
	d    *sourceDialer
}

// metricsURL is the server's /metrics (a cluster's first node); none for
// the relay.
func (t *target) metricsURL() string {
	if t.isRelay {
		return ""
	}
	return "http://" + t.addr + "/metrics"
}

// servers lists the server processes whose memory counts: one, or every
// node of a cluster.
func (t *target) servers() []clusterNode {
	if len(t.nodes) > 0 {
		return t.nodes
	}
	return []clusterNode{{addr: t.addr, pid: t.pid, d: t.d}}
}

// cpuPids lists the processes whose CPU is the server's: the one server,
// or a cluster's nodes, NATS servers and PostgreSQL.
func (t *target) cpuPids() []int {
	if len(t.cpuProcs) > 0 {
		return t.cpuProcs
	}
	if t.pid > 0 {
		return []int{t.pid}
	}
	return nil
}

// cpuByRole turns CPU seconds by process (cpuUse.Each) into µs per
// operation by role (nodes, NATS, PostgreSQL); nil for one server.
func (t *target) cpuByRole(each []float64, ops int64) map[string]float64 {
	if len(t.cpuRoles) == 0 || len(each) != len(t.cpuRoles) || ops <= 0 {
		return nil
	}
	by := map[string]float64{}
	for i, s := range each {
		by[t.cpuRoles[i]] += s / float64(ops) * 1e6
	}
	return by
}

// sample reads every server process and sums what adds up (RSS, threads,
// fds, goroutines, devices); FDLimit is the lowest.
func (t *target) sample() procSample {
	var sum procSample
	for i, n := range t.servers() {
		url := ""
		if !t.isRelay {
			url = "http://" + n.addr + "/metrics"
		}
		s, _ := sampleProc(n.pid, url)
		if i == 0 {
			sum = s
			continue
		}
		sum.RSSKiB += s.RSSKiB
		sum.Threads += s.Threads
		sum.FDs += s.FDs
		sum.FDLimit = min(sum.FDLimit, s.FDLimit)
		sum.Devices += s.Devices
		sum.CPU += s.CPU
		if s.Goroutines >= 0 && sum.Goroutines >= 0 {
			sum.Goroutines += s.Goroutines
		}
	}
	return sum
}

// rssKiB is the servers' RSS summed, from /proc/<pid>/status alone.
func (t *target) rssKiB() int64 {
	var kib int64
	for _, n := range t.servers() {
		kib += sampleLight(n.pid).RSSKiB
	}
	return kib
}

// statusDialer is where status device i connects: every node of a
// cluster but the last, which holds the app channels (statusAppDialer),
// so that every update crosses from one node to another.
func (t *target) statusDialer(i int) *sourceDialer {
	if len(t.nodes) < 2 {
		return t.d
	}
	return t.nodes[i%(len(t.nodes)-1)].d
}

func (t *target) statusAppDialer() *sourceDialer {
	if len(t.nodes) < 2 {
		return t.d
	}
	return t.nodes[len(t.nodes)-1].d
}

// spreadDialer spreads connections over every node of a cluster.
func (t *target) spreadDialer(i int) *sourceDialer {
	if len(t.nodes) == 0 {
		return t.d
	}
	return t.nodes[i%len(t.nodes)].d
}

func (t *target) appIDs(withSlow bool) []int {
	ids := make([]int, 0, len(t.apps)+1)
	for _, a := range t.apps {
		ids = append(ids, a.ID)
	}
	if withSlow {
		ids = append(ids, t.slow.ID)
	}
	return ids
}

// relayTarget needs no provisioning: the relay checks nothing.
func relayTarget(addr string, pid, nApps, nUsers, nNotify, perIP int) *target {
	t := &target{name: "relay", side: sideBaseline, isRelay: true, addr: addr, pid: pid, d: newSourceDialer(addr, perIP)}
	for i := range nApps {
		t.apps = append(t.apps, appCred{ID: 1 + i, Key: "relay", Domain: "relay.example"})
	}
	t.slow = appCred{ID: 1 + nApps, Key: "relay"}
	for i := range nUsers + nNotify {
		u := userCred{Email: fmt.Sprintf("u%d@relay", i), Assertion: "relay", PUIDs: map[int]string{}}
		for _, id := range t.appIDs(true) {
			u.PUIDs[id] = fmt.Sprintf("puid-%d-%d", id, i)
		}
		t.users = append(t.users, u)
	}
	t.users, t.notifyUsers = t.users[:nUsers], t.users[nUsers:]
	return t
}
