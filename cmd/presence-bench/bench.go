package main

import (
	"context"
	"fmt"
	"math"
	"os"
	"sync"
	"time"
)

// bench holds the targets of one run and turns scenario results into report
// rows with their ratios and floors.
type bench struct {
	o       *options
	prog    *progress
	rep     *report
	fdLimit uint64

	// pres is the side measured, rel its baseline in the same run: Presence
	// and the relay, or (-cluster) the cluster and one node. nil when -only
	// leaves one out.
	pres, rel    *target
	server, rchd *child
	cluster      *clusterSet
	stopOnce     sync.Once
	runs         int    // runs started, to pause between them
	tmpDir       string // the spawned server's config, database and log
}

// pause waits -between before every run but the first: the previous run's
// devices are still being disconnected on the server.
func (b *bench) pause(ctx context.Context) {
	if b.runs++; b.runs == 1 {
		return
	}
	select {
	case <-ctx.Done():
	case <-time.After(b.o.between):
	}
}

func (b *bench) stopChildren() {
	b.stopOnce.Do(func() {
		b.rchd.stop()
		b.server.stop()
		b.cluster.stop()
		dirs := []string{b.tmpDir}
		if b.cluster != nil {
			dirs = append(dirs, b.cluster.dir)
		}
		for _, d := range dirs {
			if d != "" && !b.o.keep {
				os.RemoveAll(d)
			} else if d != "" {
				b.prog.logf("server data and logs kept in %s", d)
			}
		}
	})
}

// setup starts (or finds) Presence, provisions it, and spawns the relay.
func (b *bench) setup(ctx context.Context) error {
	o := b.o
	if o.only != "relay" {
		c, addr, pid, xaddr := cli{bin: o.bin, config: o.conf}, o.addr, o.pid, o.xmppAddr
		if o.spawn {
			srv, sc, dir, err := spawnServer(ctx, o.src, o.bin, o.extraConf, o.pprofPort, b.prog)
			b.tmpDir = dir
			if err != nil {
				return err
			}
			b.server, c, addr, pid, xaddr = srv, sc, srv.addr, srv.pid(), srv.xmppAddr
		} else if pid == 0 {
			b.prog.logf("no -pid: server memory, threads and fds will read as 0")
		}
		b.prog.logf("provisioning %d apps and %d users on %s", o.apps+1, o.users+o.notifyUsers, addr)
		t, err := provision(ctx, c, addr, o.apps, o.users, o.notifyUsers, o.perIP, b.prog)
		if err != nil {
			return err
		}
		t.pid = pid
		t.bin = c.bin
		t.xmpp = xmppTarget{addr: xaddr, domain: o.xmppDomain}
		b.pres = t
		b.rep.detail("server_pid", pid)
	}
	if o.cluster {
		return b.setupCluster(ctx)
	}
	if o.only != "presence" {
		rc, err := spawnRelay(ctx)
		if err != nil {
			return err
		}
		b.rchd = rc
		b.rel = relayTarget(rc.addr, rc.pid(), o.apps, o.users, o.notifyUsers, o.perIP)
		b.prog.logf("relay pid %d on %s", rc.pid(), rc.addr)
	}
	return nil
}

// statusRun runs one Presence-only measurement, again while other work took
// more than -max-other of the machine (up to -retries more times), and keeps
// the quietest: on a shared machine a run during someone's build measures
// the build.
func (b *bench) statusRun(ctx context.Context, t *target, so statusOpts) (statusResult, error) {
	return quietest(ctx, b, "status "+t.name, func() (statusResult, error) {
		return runStatus(ctx, t, so, b.prog)
	}, func(r statusResult) float64 { return r.OtherCPU })
}

// paired runs run on every target in turn, as one round, and repeats the
// round while other work took more than -max-other of the machine during
// any of its runs. It keeps the round whose worst run was the quietest, so
// that both sides of a ratio were measured under the same conditions (a
// quiet Presence run against a disturbed relay run gave a ratio of 1.42).
func paired[T any](ctx context.Context, b *bench, name string, run func(t *target) (T, error), other func(T) float64) (map[string]T, error) {
	var best map[string]T
	bestOther := math.Inf(1)
	for i := 0; i <= b.o.retries && ctx.Err() == nil; i++ {
		round := map[string]T{}
		worst := 0.0
		for _, t := range b.targets() {
			b.pause(ctx)
			r, err := run(t)
			if err != nil {
				return nil, fmt.Errorf("%s %s: %w", name, t.name, err)
			}
			round[t.side] = r
			worst = max(worst, other(r))
		}
		if worst < bestOther {
			best, bestOther = round, worst
		}
		if bestOther <= b.o.maxOther {
			break
		}
		b.prog.logf("%s: other work took up to %.0f%% of the machine during the round (more than %.0f%%)", name, 100*worst, 100*b.o.maxOther)
	}
	return best, ctx.Err()
}

func quietest[T any](ctx context.Context, b *bench, name string, run func() (T, error), other func(T) float64) (T, error) {
	var best T
	bestOther := math.Inf(1)
	for i := 0; i <= b.o.retries && ctx.Err() == nil; i++ {
		if i > 0 {
			b.pause(ctx)
		}
		r, err := run()
		if err != nil {
			return r, err
		}
		if o := other(r); o < bestOther {
			best, bestOther = r, o
		}
		if bestOther <= b.o.maxOther {
			break
		}
		b.prog.logf("%s: other work took %.0f%% of the machine (more than %.0f%%)", name, 100*other(r), 100*b.o.maxOther)
	}
	return best, nil
}

// targets lists the sides that run, relay first: its figures set the rates
// the open-loop runs use.
func (b *bench) targets() []*target {
	var ts []*target
	if b.rel != nil {
		ts = append(ts, b.rel)
	}
	if b.pres != nil {
		ts = append(ts, b.pres)
	}
	return ts
}

// pair returns the measured side's and the baseline's values of f over
// results keyed by target side; none when a side did not run.
func pair[T any](res map[string]T, f func(T) float64) (p, r float64) {
	p, r = none, none
	if v, ok := res[sideMeasured]; ok {
		p = f(v)
	}
	if v, ok := res[sideBaseline]; ok {
		r = f(v)
	}
	return p, r
}

// pairRow is the row of one figure, f, of both sides' results.
func pairRow[T any](res map[string]T, scenario, metric, unit string, f func(T) float64) row {
	p, r := pair(res, f)
	return newRow(scenario, metric, unit, p, r)
}

func (b *bench) connect(ctx context.Context) {
	o := b.o
	res := map[string]connectResult{}
	for _, t := range b.targets() {
		b.pause(ctx)
		r := runConnect(ctx, t, connectOpts{n: o.connN, conc: o.connConc, checkpoints: parseInts(o.checkpts),
			hold: o.hold, settle: o.settle, fdLimit: b.fdLimit}, b.prog)
		res[t.side] = r
		b.rep.detail("connect_"+t.name, r)
		b.rep.errs("connect "+t.name, r.Errors)
		b.prog.logf("connect %s: held %d (still %d after hold), %.0f connects/s, errors: %s",
			t.name, r.Held, r.StillHeld, r.ConnectsPerSec, formatErrs(r.Errors))
	}
	p, r := pair(res, func(c connectResult) float64 { return float64(c.StillHeld) })
	held := newRow("connect", "devices held", "", p, r)
	if o.connN >= 19000 && !o.cluster {
		held = held.atLeast(p, 19000, "≥ 19,000")
	}
	p, r = pair(res, func(c connectResult) float64 { return c.ConnectsPerSec })
	connects := newRow("connect", "connects/s", "", p, r)
	if !o.cluster { // issue 19 asks for the cluster's figure, with no floor
		connects = connects.atLeast(p, 5000, "≥ 5,000")
	}
	rows := []row{held, connects}
	p, r = pair(res, func(c connectResult) float64 { return c.Latency.P99 })
	rows = append(rows, newRow("connect", "connect p99", "ms", p, r))
	p, r = pair(res, func(c connectResult) float64 { return c.CPUPerConnect })
	rows = append(rows, newRow("connect", "server CPU per connect", "µs", p, r))
	rows = append(rows, roleRows(res, "connect", func(c connectResult) map[string]float64 { return c.CPUByRole })...)
	p, r = pair(res, func(c connectResult) float64 { return c.ToolCPU })
	rows = append(rows, newRow("connect", "tool CPU per connect", "µs", p, r))
	pc := res[sideMeasured]
	rc, hasRelay := res[sideBaseline]
	for i, cp := range pc.Checkpoints {
		rv, rs := none, none
		if hasRelay && i < len(rc.Checkpoints) {
			rv, rs = rc.Checkpoints[i].KiBPerConn, rc.Checkpoints[i].SlopeKiB
		}
		perConn := newRow("connect", fmt.Sprintf("RSS/conn at %s", formatNum(float64(cp.Held))), "KiB", cp.KiBPerConn, rv)
		if o.cluster { // issue 19: a cluster node's RSS per idle device ≤ 1.5 × one node's
			// Judged at the last checkpoint only: three nodes hold a third
			// each, and at the first ones each node's fixed heap steps
			// weigh on few devices.
			if perConn.Ratio != nil && i == len(pc.Checkpoints)-1 {
				perConn = perConn.atMost(*perConn.Ratio, 1.5, "ratio ≤ 1.5")
			}
		} else {
			perConn = perConn.atMost(cp.KiBPerConn, 10, "≤ 10 KiB")
		}
		rows = append(rows, perConn,
			newRow("connect", fmt.Sprintf("RSS slope to %s", formatNum(float64(cp.Held))), "KiB", cp.SlopeKiB, rs),
			newRow("connect", fmt.Sprintf("server RSS at %s", formatNum(float64(cp.Held))), "MiB", float64(cp.Server.RSSKiB)/1024, none),
			newRow("connect", fmt.Sprintf("threads/fds at %s", formatNum(float64(cp.Held))), "", float64(cp.Server.Threads), none),
		)
		rows[len(rows)-1].Metric = fmt.Sprintf("threads at %s (fds %d)", formatNum(float64(cp.Held)), cp.Server.FDs)
		if g := cp.Server.Goroutines; g >= 0 {
			rows = append(rows, newRow("connect", fmt.Sprintf("goroutines at %s", formatNum(float64(cp.Held))), "", float64(g), none))
		}
	}
	if pc.Stopped != "" {
		b.rep.detail("connect_presence_stopped", pc.Stopped)
	}
	b.rep.add(rows...)
}

func (b *bench) status(ctx context.Context) error {
	o := b.o
	statusOther := func(r statusResult) float64 { return r.OtherCPU }
	closed, err := paired(ctx, b, "status closed loop", func(t *target) (statusResult, error) {
		return runStatus(ctx, t, statusOpts{devices: o.statusDevs, inflight: o.inflight, dur: o.dur, warm: o.warm}, b.prog)
	}, statusOther)
	if err != nil {
		return err
	}
	b.recordStatus(closed, "closed")
	p, r := pair(closed, func(s statusResult) float64 { return s.DeliveredPerSec })
	maxRow := newRow("status", fmt.Sprintf("max delivered/s (closed loop, %d in flight, %d dev → %d apps)", o.inflight, o.statusDevs, o.apps), "", p, r)
	if maxRow.Ratio != nil {
		maxRow = maxRow.atLeast(*maxRow.Ratio, 0.5, "ratio ≥ 0.50")
	}
	pu, ru := pair(closed, func(s statusResult) float64 { return s.UpdatesPerSec })
	rows := []row{maxRow, newRow("status", "max device updates/s (closed loop)", "", pu, ru)}
	pc, rc := pair(closed, func(s statusResult) float64 { return s.deliveredShare() })
	rows = append(rows, newRow("status", "delivered ÷ (sent × apps), closed loop", "", pc, rc))
	pc, rc = pair(closed, func(s statusResult) float64 { return s.CPUPerUpdate })
	rows = append(rows, newRow("status", fmt.Sprintf("server CPU per update (→ %d apps)", o.apps), "µs", pc, rc))
	pc, rc = pair(closed, func(s statusResult) float64 { return s.ToolCPU })
	rows = append(rows, newRow("status", "tool CPU per update", "µs", pc, rc))
	pc, rc = pair(closed, func(s statusResult) float64 { return 100 * s.OtherCPU })
	rows = append(rows, newRow("status", "machine taken by other work, closed loop", "%", pc, rc))

	rate := o.rate
	if rate == 0 { // half of what the ceiling sustained
		rate = ru / 2
		if math.IsNaN(ru) || ru <= 0 {
			rate = pu / 2
		}
	}
	open, err := paired(ctx, b, "status open loop", func(t *target) (statusResult, error) {
		return runStatus(ctx, t, statusOpts{devices: o.statusDevs, rate: rate, dur: o.dur, warm: o.warm}, b.prog)
	}, statusOther)
	if err != nil {
		return err
	}
	b.recordStatus(open, "open")
	label := fmt.Sprintf("at %s updates/s open loop", formatNum(rate))
	p, r = pair(open, func(s statusResult) float64 { return s.DeliveredPerSec })
	rows = append(rows, newRow("status", "delivered/s "+label, "", p, r))
	p, r = pair(open, func(s statusResult) float64 { return s.deliveredShare() })
	rows = append(rows, newRow("status", "delivered ÷ (sent × apps) "+label, "", p, r))
	p, r = pair(open, func(s statusResult) float64 { return s.Latency.P50 })
	rows = append(rows, newRow("status", "latency p50 "+label, "ms", p, r))
	p, r = pair(open, func(s statusResult) float64 { return s.Latency.P99 })
	rows = append(rows, newRow("status", "latency p99 "+label, "ms", p, r).atMost(p, 10, "≤ 10 ms"))
	p, r = pair(open, func(s statusResult) float64 { return s.Latency.P999 })
	rows = append(rows, newRow("status", "latency p99.9 "+label, "ms", p, r))
	p, r = pair(open, func(s statusResult) float64 { return 100 * s.OtherCPU })
	rows = append(rows, newRow("status", "machine taken by other work, open loop", "%", p, r))
	if t := b.pres; t != nil && t.xmpp.addr != "" && o.xmppRun {
		// The same load with every app on the component channel. The relay
		// speaks no XMPP, so its WebSocket figures above are the baseline.
		b.pause(ctx)
		x, err := b.statusRun(ctx, t, statusOpts{devices: o.statusDevs, rate: rate, dur: o.dur, warm: o.warm, xmppApps: len(t.apps)})
		if err != nil {
			return fmt.Errorf("presence open loop over XMPP: %w", err)
		}
		b.rep.detail("status_open_xmpp_presence", x)
		b.rep.errs("status open-loop xmpp presence", x.Errors)
		b.logStatus(x)
		_, r = pair(open, func(s statusResult) float64 { return s.DeliveredPerSec })
		rows = append(rows, newRow("status", "delivered/s "+label+", apps on XMPP", "", x.DeliveredPerSec, r))
		_, r = pair(open, func(s statusResult) float64 { return s.Latency.P99 })
		rows = append(rows, newRow("status", "latency p99 "+label+", apps on XMPP", "ms", x.Latency.P99, r).
			atMost(x.Latency.P99, 10, "≤ 10 ms"))
	}
	if b.pres == nil { // relay-only runs judge nothing
		for i := range rows {
			rows[i].Verdict, rows[i].Floor = "", ""
		}
	}
	b.rep.add(rows...)
	return nil
}

// recordStatus puts a round's results (loop "open" or "closed") in the
// report's details and errors, and logs them.
func (b *bench) recordStatus(res map[string]statusResult, loop string) {
	for _, t := range b.targets() {
		r := res[t.side]
		b.rep.detail("status_"+loop+"_"+t.name, r)
		b.rep.errs("status "+loop+"-loop "+t.name, r.Errors)
		b.logStatus(r)
	}
}

func (b *bench) logStatus(r statusResult) {
	b.prog.logf("status %s %s: %d devices → %d apps (%d on XMPP): %s updates/s, %s delivered/s, latency p50 %.2f p99 %.2f p99.9 %.2f ms, errors: %s",
		r.Target, r.Mode, r.Devices, r.Apps, r.XMPPApps, formatNum(r.UpdatesPerSec), formatNum(r.DeliveredPerSec),
		r.Latency.P50, r.Latency.P99, r.Latency.P999, formatErrs(r.Errors))
}

func (b *bench) notify(ctx context.Context) error {
	o := b.o
	type runSpec struct {
		clients, batch int
		metric, floor  string
		min            float64
	}
	specs := []runSpec{
		{o.clients, 1, fmt.Sprintf("single-item POSTs/s (%d clients)", o.clients), "≥ 20,000", 20000},
		{o.batchClients, 100, fmt.Sprintf("notifications/s in batches of 100 (%d clients)", o.batchClients), "≥ 100,000", 100000},
	}
	for _, s := range specs {
		res, err := paired(ctx, b, fmt.Sprintf("notify batch %d", s.batch), func(t *target) (notifyResult, error) {
			return runNotify(ctx, t, notifyOpts{clients: s.clients, batch: s.batch, dur: o.dur, warm: o.warm}, b.prog)
		}, func(r notifyResult) float64 { return r.OtherCPU })
		if err != nil {
			return err
		}
		for _, t := range b.targets() {
			r := res[t.side]
			b.rep.detail(fmt.Sprintf("notify_b%d_%s", s.batch, t.name), r)
			b.rep.errs(fmt.Sprintf("notify batch %d %s", s.batch, t.name), r.Errors)
			b.prog.logf("notify %s batch %d: %s POSTs/s, %s stored/s, p99 %.2f ms, errors: %s",
				t.name, s.batch, formatNum(r.PostsPerSec), formatNum(r.PerSec), r.Latency.P99, formatErrs(r.Errors))
		}
		p, r := pair(res, func(n notifyResult) float64 { return n.PerSec })
		main := newRow("notify", s.metric, "", p, r)
		if b.pres != nil && !o.cluster { // issue 19 asks for the cluster's figures, with no floor
			main = main.atLeast(p, s.min, s.floor)
		}
		p, r = pair(res, func(n notifyResult) float64 { return n.Latency.P99 })
		pc, rc := pair(res, func(n notifyResult) float64 { return n.CPUPerItem })
		b.rep.add(main, newRow("notify", fmt.Sprintf("POST p99 (batch %d)", s.batch), "ms", p, r),
			newRow("notify", fmt.Sprintf("server CPU per notification (batch %d)", s.batch), "µs", pc, rc))
		b.rep.add(roleRows(res, "notify", func(n notifyResult) map[string]float64 { return n.CPUByRole })...)
		pc, rc = pair(res, func(n notifyResult) float64 { return n.ToolCPU })
		b.rep.add(newRow("notify", fmt.Sprintf("tool CPU per POST (batch %d)", s.batch), "µs", pc, rc))
		pc, rc = pair(res, func(n notifyResult) float64 { return 100 * n.OtherCPU })
		b.rep.add(newRow("notify", fmt.Sprintf("machine taken by other work (batch %d)", s.batch), "%", pc, rc))
	}
	return nil
}
