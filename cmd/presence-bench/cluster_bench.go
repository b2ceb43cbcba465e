package main

import (
	"context"
	"fmt"
)

// setupCluster turns the one node already spawned and provisioned into
// the baseline ("node"), starts the cluster with the same binary, and
// provisions it through node 1 (the registry is shared, so any node
// would do). The report's columns become "cluster" and "one node".
func (b *bench) setupCluster(ctx context.Context) error {
	o := b.o
	one := b.pres
	one.name, one.side = "node", sideBaseline
	one.xmpp = xmppTarget{} // -cluster measures the WebSocket channels
	b.rel, b.pres = one, nil
	b.rep.Columns = [2]string{"cluster", "one node"}
	cs, err := spawnCluster(ctx, one.bin, o.replicas, o.pprofPort, o.extraConf, b.prog)
	b.cluster = cs
	if err != nil {
		return fmt.Errorf("starting the cluster: %w", err)
	}
	b.prog.logf("provisioning %d apps and %d users on the cluster, through node 1", o.apps+1, o.users+o.notifyUsers)
	t, err := provision(ctx, cs.cli, cs.nodes[0].addr, o.apps, o.users, o.notifyUsers, o.perIP, b.prog)
	if err != nil {
		return fmt.Errorf("provisioning the cluster: %w", err)
	}
	t.name, t.side, t.bin = "cluster", sideMeasured, one.bin
	t.pid = cs.nodes[0].pid()
	for _, n := range cs.nodes {
		t.nodes = append(t.nodes, clusterNode{addr: n.addr, pid: n.pid(), d: newSourceDialer(n.addr, o.perIP)})
	}
	t.cpuProcs, t.cpuRoles = cs.pids()
	b.pres = t
	b.rep.detail("cluster_pids", map[string]any{"nodes": pidsOf(cs.nodes), "nats": pidsOf(cs.nats), "postgres": cs.pg.PID()})
	b.rep.detail("server_pid", one.pid)
	return nil
}

func pidsOf(cs []*child) []int {
	pids := make([]int, len(cs))
	for i, c := range cs {
		pids[i] = c.pid()
	}
	return pids
}

// clusterStatus offers o.rate status updates/s (5,000 by default) from
// the status devices, open loop, to the apps: on the cluster the devices
// sit on nodes 1 and 2 and every app channel on node 3, so each update is
// routed across nodes. The same load runs on one node in the same round.
// CPU per update counts every process of the set-up.
func (b *bench) clusterStatus(ctx context.Context) error {
	o := b.o
	res, err := paired(ctx, b, "status cross-node", func(t *target) (statusResult, error) {
		return runStatus(ctx, t, statusOpts{devices: o.statusDevs, rate: o.rate, dur: o.dur, warm: o.warm}, b.prog)
	}, func(r statusResult) float64 { return r.OtherCPU })
	if err != nil {
		return err
	}
	b.recordStatus(res, "open")
	label := fmt.Sprintf("at %s updates/s (%d devices on nodes 1-2 → %d apps on node 3)", formatNum(o.rate), o.statusDevs, o.apps)
	type sr = statusResult
	p99 := pairRow(res, "status", "latency p99, device → app", "ms", func(s sr) float64 { return s.Latency.P99 })
	p99 = p99.atMost(pairValue(p99.Presence), 10, "≤ 10 ms")
	cpu := pairRow(res, "status", fmt.Sprintf("CPU per update (→ %d apps), all processes of the set-up", o.apps), "µs",
		func(s sr) float64 { return s.CPUPerUpdate })
	if cpu.Ratio != nil {
		cpu = cpu.atMost(*cpu.Ratio, 2, "ratio ≤ 2")
	}
	rows := []row{
		pairRow(res, "status", "delivered/s "+label, "", func(s sr) float64 { return s.DeliveredPerSec }),
		pairRow(res, "status", "delivered ÷ (sent × apps)", "", func(s sr) float64 { return s.deliveredShare() }),
		pairRow(res, "status", "updates per app frame", "", func(s sr) float64 { return s.UpdatesPerFrame }),
		pairRow(res, "status", "latency p50, device → app", "ms", func(s sr) float64 { return s.Latency.P50 }),
		p99,
		pairRow(res, "status", "latency p99.9, device → app", "ms", func(s sr) float64 { return s.Latency.P999 }),
		cpu,
	}
	rows = append(rows, roleRows(res, "status", func(s sr) map[string]float64 { return s.CPUByRole })...)
	rows = append(rows,
		pairRow(res, "status", "tool CPU per update", "µs", func(s sr) float64 { return s.ToolCPU }),
		pairRow(res, "status", "machine taken by other work", "%", func(s sr) float64 { return 100 * s.OtherCPU }),
	)
	b.rep.add(rows...)
	return nil
}

// cpuRoles are the parts of a cluster's CPU, as target.cpuRoles names them.
var cpuRoles = []string{"nodes", "NATS", "PostgreSQL"}

// roleRows split the cluster's CPU per operation by role, so that a
// figure says where the time goes; one node has no column there.
func roleRows[T any](res map[string]T, scenario string, byRole func(T) map[string]float64) []row {
	m, ok := res[sideMeasured]
	if !ok || byRole(m) == nil {
		return nil
	}
	var rows []row
	for _, role := range cpuRoles {
		rows = append(rows, newRow(scenario, fmt.Sprintf("  of which %s", role), "µs", byRole(m)[role], none))
	}
	return rows
}

// pairValue is a row's figure, NaN when its side did not run.
func pairValue(v *float64) float64 {
	if v == nil {
		return none
	}
	return *v
}

// clusterAppNotify runs the appnotify rounds (POSTs, then the app
// channel, single items and batches of 100) on one node and on the
// cluster, where the POST clients and the channels are spread over the
// nodes.
func (b *bench) clusterAppNotify(ctx context.Context) error {
	o := b.o
	for _, sp := range appNotifySpecs(o) {
		posts, chans := map[string]notifyResult{}, map[string]notifyResult{}
		for _, t := range b.targets() {
			post, ch, err := b.appNotifyRound(ctx, t, sp.batch, sp.postClients, sp.window)
			if err != nil {
				return fmt.Errorf("%s: %w", t.name, err)
			}
			posts[t.side], chans[t.side] = post, ch
			b.rep.detail(fmt.Sprintf("appnotify_channel_b%d_%s", sp.batch, t.name), ch)
			b.rep.errs(fmt.Sprintf("appnotify channel batch %d %s", sp.batch, t.name), ch.Errors)
			b.prog.logf("appnotify %s batch %d: channel %s stored/s, p99 %.2f ms", t.name, sp.batch, formatNum(ch.PerSec), ch.Latency.P99)
		}
		type nr = notifyResult
		b.rep.add(
			pairRow(chans, "appnotify", fmt.Sprintf("%s/s over the app channel (%d × %d in flight)", sp.what, o.appConns, sp.window), "",
				func(n nr) float64 { return n.PerSec }),
			pairRow(posts, "appnotify", fmt.Sprintf("%s/s POSTed, same round (%d clients)", sp.what, sp.postClients), "",
				func(n nr) float64 { return n.PerSec }),
			pairRow(chans, "appnotify", fmt.Sprintf("answer p99 over the channel (batch %d)", sp.batch), "ms",
				func(n nr) float64 { return n.Latency.P99 }),
			pairRow(chans, "appnotify", fmt.Sprintf("CPU per notification over the channel (batch %d), all processes", sp.batch), "µs",
				func(n nr) float64 { return n.CPUPerItem }),
		)
		b.rep.add(roleRows(chans, "appnotify", func(n nr) map[string]float64 { return n.CPUByRole })...)
		b.rep.add(
			pairRow(chans, "appnotify", fmt.Sprintf("machine taken by other work, channel (batch %d)", sp.batch), "%",
				func(n nr) float64 { return 100 * n.OtherCPU }),
		)
	}
	return nil
}
