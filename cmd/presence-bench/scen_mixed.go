package main

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// mixedResult is the mixed scenario on one target: idle devices held while
// status updates and notification POSTs run at the same time.
type mixedResult struct {
	Target string        `json:"target"`
	Idle   connectResult `json:"idle"`
	Status statusResult  `json:"status"`
	Notify notifyResult  `json:"notify"`
}

func runMixed(ctx context.Context, t *target, o *options, fdLimit uint64, prog *progress) (mixedResult, error) {
	res := mixedResult{Target: t.name}
	var f fleet
	defer f.close()
	// Idle devices belong to users other than the status devices': a user's
	// status is the best of their devices, so an idle "online" device would
	// swallow the status devices' "unavailable" updates (rightly).
	idleUsers := t.users[min(o.mixedDevs, len(t.users)):]
	if len(idleUsers) == 0 {
		return res, fmt.Errorf("mixed needs more -users (%d) than -mixed-devices (%d)", len(t.users), o.mixedDevs)
	}
	res.Idle = holdDevices(ctx, t, connectOpts{n: o.mixedIdle, conc: o.connConc, settle: time.Second, fdLimit: fdLimit, users: idleUsers}, &f, prog)
	var wg sync.WaitGroup
	var serr, nerr error
	wg.Add(2)
	go func() {
		defer wg.Done()
		res.Status, serr = runStatus(ctx, t, statusOpts{devices: o.mixedDevs, rate: o.mixedRate, dur: o.dur, warm: o.warm}, prog)
	}()
	go func() {
		defer wg.Done()
		res.Notify, nerr = runNotify(ctx, t, notifyOpts{clients: o.mixedClients, batch: 1, dur: o.dur, warm: o.warm}, prog)
	}()
	wg.Wait()
	res.Idle.StillHeld = int(f.alive.Load())
	res.Idle.Errors = f.errs.snapshot()
	if serr != nil {
		return res, serr
	}
	return res, nerr
}

func (b *bench) mixed(ctx context.Context) error {
	res := map[string]mixedResult{}
	for _, t := range b.targets() {
		b.pause(ctx)
		r, err := runMixed(ctx, t, b.o, b.fdLimit, b.prog)
		if err != nil {
			return fmt.Errorf("%s mixed: %w", t.name, err)
		}
		res[t.side] = r
		b.rep.detail("mixed_"+t.name, r)
		b.rep.errs("mixed idle "+t.name, r.Idle.Errors)
		b.rep.errs("mixed status "+t.name, r.Status.Errors)
		b.rep.errs("mixed notify "+t.name, r.Notify.Errors)
		b.prog.logf("mixed %s: %d idle held, %s delivered/s p99 %.2f ms, %s notifications/s",
			t.name, r.Idle.StillHeld, formatNum(r.Status.DeliveredPerSec), r.Status.Latency.P99, formatNum(r.Notify.PerSec))
	}
	o := b.o
	p, r := pair(res, func(m mixedResult) float64 { return float64(m.Idle.StillHeld) })
	rows := []row{newRow("mixed", "idle devices held", "", p, r)}
	label := fmt.Sprintf("at %s/s", formatNum(o.mixedRate))
	p, r = pair(res, func(m mixedResult) float64 { return m.Status.DeliveredPerSec })
	rows = append(rows, newRow("mixed", "status delivered/s "+label, "", p, r))
	p, r = pair(res, func(m mixedResult) float64 { return m.Status.Latency.P99 })
	rows = append(rows, newRow("mixed", "status p99 "+label, "ms", p, r))
	p, r = pair(res, func(m mixedResult) float64 { return m.Notify.PerSec })
	rows = append(rows, newRow("mixed", fmt.Sprintf("notifications/s (%d clients)", o.mixedClients), "", p, r))
	p, r = pair(res, func(m mixedResult) float64 { return float64(m.Status.ServerAfter.RSSKiB) / 1024 })
	rows = append(rows, newRow("mixed", "server RSS at end", "MiB", p, r))
	b.rep.add(rows...)
	return nil
}

// slowapp runs the same open-loop status load twice on Presence: once with
// an extra app that reads, once with that app reading nothing for -slow-for.
// The other apps' latency and the server's memory must not change: the
// server coalesces the slow app's pending updates per PUID. The relay has no
// such state (it drops), so this scenario is Presence only.
func (b *bench) slowapp(ctx context.Context) error {
	t := b.pres
	if t == nil {
		b.prog.logf("slowapp: needs Presence, skipped")
		return nil
	}
	o := b.o
	b.pause(ctx)
	// Both phases last -slow-for: a p99 over 10 s and one over 30 s differ
	// by the machine's noise alone.
	reading, err := b.statusRun(ctx, t, statusOpts{devices: o.statusDevs, rate: o.slowRate, dur: o.slowFor, warm: o.warm, withSlow: true})
	if err != nil {
		return fmt.Errorf("slow app reading: %w", err)
	}
	b.logStatus(reading)
	b.pause(ctx)
	stalled, err := b.statusRun(ctx, t, statusOpts{devices: o.statusDevs, rate: o.slowRate, dur: o.slowFor, warm: o.warm,
		withSlow: true, stallSlow: true, drain: 3 * time.Second})
	if err != nil {
		return fmt.Errorf("slow app stalled: %w", err)
	}
	b.logStatus(stalled)
	b.rep.detail("slowapp_reading", reading)
	b.rep.detail("slowapp_stalled", stalled)
	b.rep.errs("slowapp reading presence", reading.Errors)
	b.rep.errs("slowapp stalled presence", stalled.Errors)
	label := fmt.Sprintf("at %s/s", formatNum(o.slowRate))
	a, s := reading.Latency.P99, stalled.Latency.P99
	// Coalesced state is one pending update per PUID, reached within the
	// first seconds; after that a bounded server stops growing. Unbounded
	// queueing would grow with rate × time: ~20 MiB over 30 s at 5,000/s.
	// The trend is a least-squares slope over one sample a second in the
	// second half of the stall: in the first seconds the heap grows to its
	// working size (it does with the slow app reading too), and two single
	// samples swing with the GC and the scavenger by tens of MiB.
	series := stalled.RSSSeries[len(stalled.RSSSeries)/2:]
	trend := slope(series) * o.slowFor.Seconds()
	bound := float64(stalled.Devices)*2 + 4096 // 2 KiB per PUID and 4 MiB of allocator noise
	b.rep.add(
		newRow("slowapp", fmt.Sprintf("others' p99 %s, slow app reading %s", label, o.slowFor), "ms", a, none),
		newRow("slowapp", fmt.Sprintf("others' p99 %s, slow app stalled %s", label, o.slowFor), "ms", s, none).
			atMost(s, max(1.5*a, a+1), "≤ max(1.5×reading, reading+1 ms)"),
		newRow("slowapp", "others' delivered/s, slow app stalled", "", stalled.DeliveredPerSec, none),
		newRow("slowapp", fmt.Sprintf("server RSS trend, 2nd half of stall, × %s (%d PUIDs)", o.slowFor, stalled.Devices), "KiB", trend, none).
			atMost(trend, bound, fmt.Sprintf("≤ %s KiB", formatNum(bound))),
		newRow("slowapp", "server RSS at the end of the stall", "MiB", float64(stalled.ServerAfter.RSSKiB)/1024, none),
	)
	return nil
}
