package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// soakDrainConc is how many users the drain after the load takes at once.
const soakDrainConc = 100

// soakRun is one soak against one server.
type soakRun struct {
	t       *target
	o       *soakOpts
	prog    *progress
	appIDs  []int
	fdLimit uint64
	dials   chan struct{} // a slot per connect in flight
	begin   int64         // tool clock (now()) when the load began
	stopAt  int64         // tool clock when the load stops

	ledger           ledger
	devErrs, appErrs errCounts
	emfile           sync.Once

	connected, connects, within, after atomic.Int64
	cleanLeaves, abruptLeaves          atomic.Int64
	unexpected                         atomic.Int64 // sessions the server ended
	statusSent, statusOK               atomic.Int64
	pushes, acksSent, acksOK           atomic.Int64
	updates, batches, nseq, maxToolFDs atomic.Int64
	xmppUpdates, xmppReceipts          atomic.Int64 // the part of updates and stored that went over XMPP
	drained                            atomic.Int64
	readingsMu                         sync.Mutex // guards: readings
	readings                           []soakReading
}

func newSoakRun(t *target, o *soakOpts, prog *progress) *soakRun {
	r := &soakRun{t: t, o: o, prog: prog, appIDs: t.appIDs(false), dials: make(chan struct{}, max(o.conc, 1))}
	r.fdLimit, _ = raiseFileLimit()
	return r
}

// timeOf turns a tool-clock instant into wall time.
func (r *soakRun) timeOf(ns int64) time.Time { return t0.Add(time.Duration(ns)) }

// soakReading is the server's state at one moment of the soak.
type soakReading struct {
	At         float64 `json:"at_s"` // seconds since the load began
	RSSKiB     int64   `json:"rss_kib"`
	Goroutines int     `json:"goroutines"` // go_goroutines from /metrics; -1 when absent
	FDs        int     `json:"fds"`
	FDLimit    int64   `json:"fd_limit"`
	Threads    int     `json:"threads"`
	Devices    int     `json:"devices"`        // presence_devices_connected
	Connected  int64   `json:"tool_connected"` // this tool's connected devices
	ToolFDs    int     `json:"tool_fds"`
}

// read takes a reading from /proc (with a pid) and /metrics; /metrics
// alone gives RSS and fds too, from the Prometheus process collector.
func (r *soakRun) read() soakReading {
	s := soakReading{At: float64(now()-r.begin) / 1e9, Goroutines: -1, Connected: r.connected.Load(), ToolFDs: openFiles()}
	if r.t.pid > 0 {
		if p, err := sampleProc(r.t.pid, ""); err == nil {
			s.RSSKiB, s.FDs, s.FDLimit, s.Threads = p.RSSKiB, p.FDs, p.FDLimit, p.Threads
		}
	}
	m := scrapeMetrics(r.t.metricsURL())
	if v, ok := m["go_goroutines"]; ok {
		s.Goroutines = int(v)
	}
	if v, ok := m["process_resident_memory_bytes"]; ok && s.RSSKiB == 0 {
		s.RSSKiB = int64(v / 1024)
	}
	if v, ok := m["process_open_fds"]; ok && s.FDs == 0 {
		s.FDs = int(v)
	}
	if v, ok := m["process_max_fds"]; ok && s.FDLimit == 0 {
		s.FDLimit = int64(v)
	}
	s.Devices = int(m["presence_devices_connected"])
	if int64(s.ToolFDs) > r.maxToolFDs.Load() {
		r.maxToolFDs.Store(int64(s.ToolFDs))
	}
	return s
}

// soakResult is a soak's outcome: the JSON detail and what the rows show.
type soakResult struct {
	Devices          int     `json:"devices"`
	Users            int     `json:"users"`
	Apps             int     `json:"apps"`
	XMPPApps         int     `json:"xmpp_apps"`
	DurationS        float64 `json:"duration_s"`
	WarmupS          float64 `json:"warmup_s"`
	GraceS           float64 `json:"grace_s"`
	NotifyRatePerApp float64 `json:"notify_rate_per_app"`

	Baseline  soakReading   `json:"baseline"` // before any client
	Warm      soakReading   `json:"warm"`     // after the warm-up
	EndOfLoad soakReading   `json:"end_of_load"`
	After     soakReading   `json:"after"` // load stopped, drained, grace passed
	Readings  []soakReading `json:"readings"`

	Connects              int64            `json:"connects"`
	ReconnectsWithinGrace int64            `json:"reconnects_within_grace"`
	ReconnectsAfterGrace  int64            `json:"reconnects_after_grace"`
	CleanLeaves           int64            `json:"clean_leaves"`
	AbruptLeaves          int64            `json:"abrupt_leaves"`
	ClosedByServer        int64            `json:"sessions_closed_by_server"`
	StatusSent            int64            `json:"status_sent"`
	StatusAnswered        int64            `json:"status_answered_true"`
	UpdatesDelivered      int64            `json:"updates_delivered_to_apps"`
	UpdatesOverXMPP       int64            `json:"updates_over_xmpp"`
	ReceiptsOverXMPP      int64            `json:"receipts_over_xmpp"`
	AppRequests           int64            `json:"app_requests"`
	AcksSent              int64            `json:"acks_sent"`
	AcksAnswered          int64            `json:"acks_answered_true"`
	DrainedUsers          int64            `json:"drained_users"`
	MaxToolFDs            int64            `json:"max_tool_fds"`
	Notifications         notifTally       `json:"notifications"`
	DeviceErrors          map[string]int64 `json:"device_errors"`
	AppErrors             map[string]int64 `json:"app_errors"`
}

// run connects the apps, lets the devices flap until -duration has passed
// while reading the server, drains what is still queued, lets the grace
// pass and reads the server once more.
func (r *soakRun) run(ctx context.Context) (*soakResult, error) {
	o := r.o
	res := &soakResult{Devices: o.devices, Users: len(r.t.users), Apps: o.apps, XMPPApps: o.xmppApps,
		DurationS: o.dur.Seconds(), WarmupS: o.warm.Seconds(), GraceS: o.grace.Seconds(), NotifyRatePerApp: o.notifyRate}
	r.begin = now()
	res.Baseline = r.read()
	r.prog.logf("soak: baseline, no client: %s", res.Baseline)
	r.begin = now()
	r.stopAt = r.begin + int64(o.dur)

	appCtx, stopApps := context.WithCancel(ctx)
	defer stopApps()
	var appsWG sync.WaitGroup
	sent := make([]chan struct{}, len(r.t.apps))
	for i, a := range r.t.apps {
		sent[i] = make(chan struct{})
		appsWG.Add(1)
		go func() {
			defer appsWG.Done()
			r.runApp(appCtx, a, i < o.xmppApps, sent[i])
		}()
	}

	// The devices' context ends when the load stops: one waiting out a
	// pause or a backoff stops at once, not up to half a minute later.
	loadCtx, stopLoad := context.WithDeadline(ctx, r.timeOf(r.stopAt))
	defer stopLoad()
	var devWG sync.WaitGroup
	for i := range o.devices {
		u := r.t.users[i/o.perUser]
		devWG.Add(1)
		go func() {
			defer devWG.Done()
			// Starts spread over the warm-up: no connect storm.
			r.runDevice(loadCtx, u, fmt.Sprintf("soak-%d", i%o.perUser), rand.N(o.warm+1))
		}()
	}

	var lastUpdates, lastPushes int64
	r.prog.set("soak", func() string {
		u, p := r.updates.Load(), r.pushes.Load()
		line := fmt.Sprintf("%d connected, %d connects, %d updates/s to apps, %d pushes/s, %d sessions closed by server, device errors %d, app errors %d",
			r.connected.Load(), r.connects.Load(), u-lastUpdates, p-lastPushes, r.unexpected.Load(), r.devErrs.total(), r.appErrs.total())
		lastUpdates, lastPushes = u, p
		return line
	})
	defer r.prog.set("", nil)

	// Readings: after the warm-up, every -sample-every, and a last one just
	// before the stop, while the load is still whole.
	last := r.stopAt - int64(min(o.sample/2, time.Second))
	for next := r.begin + int64(o.warm); ctx.Err() == nil; next += int64(o.sample) {
		at := min(next, last)
		if wait := time.Duration(at - now()); wait > 0 && !sleepCtx(ctx, wait) {
			break
		}
		s := r.read()
		r.readingsMu.Lock()
		r.readings = append(r.readings, s)
		r.readingsMu.Unlock()
		r.prog.logf("soak: reading at %.0f s: %s", s.At, s)
		if at == last {
			break
		}
	}
	sleepCtx(ctx, time.Duration(r.stopAt-now()))
	r.prog.logf("soak: load stops; waiting for devices to leave and apps' last answers")
	devWG.Wait()
	// Each app waits 10 s at most for its last answers; this is a backstop.
	waitCtx, cancelWait := context.WithTimeout(ctx, 30*time.Second)
	for _, c := range sent {
		select {
		case <-c:
		case <-waitCtx.Done():
		}
	}
	cancelWait()

	// Whatever is still queued goes to one more device per user.
	r.prog.logf("soak: draining what is still queued, one device per user")
	r.drain(ctx)
	stopApps()
	appsWG.Wait()

	// The grace passes; then the server should be back to its baseline.
	sleepCtx(ctx, o.grace+2*time.Second)
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
		if s := r.read(); s.Devices == 0 {
			break
		}
		if !sleepCtx(ctx, 200*time.Millisecond) {
			break
		}
	}
	res.After = r.read()
	r.prog.logf("soak: after the load, the drain and the grace: %s", res.After)

	r.readingsMu.Lock()
	res.Readings = append([]soakReading(nil), r.readings...)
	r.readingsMu.Unlock()
	if n := len(res.Readings); n > 0 {
		res.Warm, res.EndOfLoad = res.Readings[0], res.Readings[n-1]
	}
	res.Connects, res.ReconnectsWithinGrace, res.ReconnectsAfterGrace = r.connects.Load(), r.within.Load(), r.after.Load()
	res.CleanLeaves, res.AbruptLeaves, res.ClosedByServer = r.cleanLeaves.Load(), r.abruptLeaves.Load(), r.unexpected.Load()
	res.StatusSent, res.StatusAnswered, res.UpdatesDelivered = r.statusSent.Load(), r.statusOK.Load(), r.updates.Load()
	res.UpdatesOverXMPP, res.ReceiptsOverXMPP = r.xmppUpdates.Load(), r.xmppReceipts.Load()
	res.AppRequests, res.AcksSent, res.AcksAnswered = r.batches.Load(), r.acksSent.Load(), r.acksOK.Load()
	res.DrainedUsers, res.MaxToolFDs = r.drained.Load(), r.maxToolFDs.Load()
	res.Notifications = r.ledger.tally()
	res.Notifications.Pushes = r.pushes.Load()
	res.DeviceErrors, res.AppErrors = r.devErrs.snapshot(), r.appErrs.snapshot()
	return res, ctx.Err()
}

// drain takes every user's queue with one more device each.
func (r *soakRun) drain(ctx context.Context) {
	jobs := make(chan userCred)
	var wg sync.WaitGroup
	for range soakDrainConc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for u := range jobs {
				r.drainUser(ctx, u, 300*time.Millisecond)
				r.drained.Add(1)
			}
		}()
	}
	for _, u := range r.t.users {
		if ctx.Err() != nil {
			break
		}
		jobs <- u
	}
	close(jobs)
	wg.Wait()
}

func (s soakReading) String() string {
	return fmt.Sprintf("RSS %.1f MiB, %d goroutines, %d fds (limit %d), %d devices by its count, %d by ours, tool fds %d",
		float64(s.RSSKiB)/1024, s.Goroutines, s.FDs, s.FDLimit, s.Devices, s.Connected, s.ToolFDs)
}

func (res *soakResult) readingLines() string {
	var b strings.Builder
	line := func(label string, s soakReading) {
		fmt.Fprintf(&b, "  %-12s %7.0f s  %8.1f  %7d  %6d  %6d\n", label, s.At, float64(s.RSSKiB)/1024, s.Goroutines, s.FDs, s.Devices)
	}
	line("baseline", res.Baseline)
	for i, s := range res.Readings {
		label := ""
		switch i {
		case 0:
			label = "warm-up"
		case len(res.Readings) - 1:
			label = "end of load"
		}
		line(label, s)
	}
	line("after", res.After)
	return b.String()
}

// addRows puts the soak's figures and verdicts in the report. The verdicts:
// RSS and goroutines at the end of the load within the tolerances of the
// warm-up reading; goroutines and fds back to the baseline once every
// client has gone; no session ended by the server; every notification
// stored reached a device and was acked.
func (res *soakResult) addRows(rep *report, o *soakOpts) {
	if res == nil {
		return
	}
	row := func(metric, unit string, v float64) row { return newRow("soak", metric, unit, v, none) }
	mib := func(kib int64) float64 { return float64(kib) / 1024 }
	n := res.Notifications
	w, e, a, b := res.Warm, res.EndOfLoad, res.After, res.Baseline
	// Flatness compares the first and the last third of the readings (their
	// medians): one reading swings with the GC's sawtooth and with the work
	// in flight at that instant; a leak moves the whole last third.
	rssFirst, rssLast := thirds(res.Readings, func(s soakReading) float64 { return mib(s.RSSKiB) })
	goFirst, goLast := thirds(res.Readings, func(s soakReading) float64 { return float64(s.Goroutines) })
	rssBound := o.rssTol*rssFirst + 16
	goBound := o.goTol*goFirst + 100
	rep.add(
		row(fmt.Sprintf("devices flapping (%d users × %d)", res.Users, o.perUser), "", float64(res.Devices)),
		row(fmt.Sprintf("apps (%d on XMPP), %g notifications/s each", res.XMPPApps, res.NotifyRatePerApp), "", float64(res.Apps)),
		row("load", "s", res.DurationS),
		row("connects", "", float64(res.Connects)),
		row(fmt.Sprintf("reconnects within the %s grace", o.grace), "", float64(res.ReconnectsWithinGrace)),
		row("reconnects after the grace", "", float64(res.ReconnectsAfterGrace)),
		row("clean leaves (close frame)", "", float64(res.CleanLeaves)),
		row("abrupt leaves (RST)", "", float64(res.AbruptLeaves)),
		row("sessions the server ended", "", float64(res.ClosedByServer)).atMost(float64(res.ClosedByServer), 0, "0"),
		row("client errors (devices and apps)", "", float64(sumCounts(res.DeviceErrors)+sumCounts(res.AppErrors))).
			atMost(float64(sumCounts(res.DeviceErrors)+sumCounts(res.AppErrors)), 0, "0"),
		row("status updates sent by devices", "", float64(res.StatusSent)),
		row("status updates answered true", "", float64(res.StatusAnswered)),
		row("status updates delivered to apps", "", float64(res.UpdatesDelivered)).atLeast(float64(res.UpdatesDelivered), 1, "> 0"),
		row("of which to XMPP components", "", float64(res.UpdatesOverXMPP)),
		row("notifications sent by apps", "", float64(n.Sent)),
		row("notifications stored (OK / receipt)", "", float64(n.Stored)).atLeast(float64(n.Stored), 1, "> 0"),
		row("of which over XMPP (receipts)", "", float64(res.ReceiptsOverXMPP)),
		row("notifications delivered (distinct)", "", float64(n.Delivered)),
		row("notification pushes (repeats included)", "", float64(n.Pushes)),
		row("notifications acked (distinct)", "", float64(n.Acked)),
		row("stored but never delivered", "", float64(n.StoredUndelivered)).atMost(float64(n.StoredUndelivered), 0, "0"),
		row("stored but never acked", "", float64(n.StoredUnacked)).atMost(float64(n.StoredUnacked), 0, "0"),
		row("server RSS, baseline", "MiB", mib(b.RSSKiB)),
		row("server RSS after warm-up", "MiB", mib(w.RSSKiB)),
		row("server RSS at the end of the load", "MiB", mib(e.RSSKiB)),
		row("server RSS growth, median of the last third of the readings − the first's", "MiB", rssLast-rssFirst).
			atMost(rssLast-rssFirst, rssBound, fmt.Sprintf("≤ %.0f%% + 16 MiB", 100*o.rssTol)),
		row("server RSS after (no client, grace passed)", "MiB", mib(a.RSSKiB)),
		row("goroutines, baseline", "", float64(b.Goroutines)),
		row("goroutines after warm-up", "", float64(w.Goroutines)),
		row("goroutines at the end of the load", "", float64(e.Goroutines)),
		row("goroutine growth, median of the last third − the first's", "", goLast-goFirst).
			atMost(goLast-goFirst, goBound, fmt.Sprintf("≤ %.0f%% + 100", 100*o.goTol)),
		row("goroutines after − baseline", "", float64(a.Goroutines-b.Goroutines)).
			atMost(float64(a.Goroutines-b.Goroutines), 20, "≤ 20"),
		row("server fds after − baseline", "", float64(a.FDs-b.FDs)).atMost(float64(a.FDs-b.FDs), 10, "≤ 10"),
		row(fmt.Sprintf("server fds, most seen (limit %d)", w.FDLimit), "", float64(maxFDs(res.Readings))),
		row(fmt.Sprintf("tool fds, most seen (limit %d)", rep.Machine.FDLimit), "", float64(res.MaxToolFDs)),
	)
}

func sumCounts(m map[string]int64) int64 {
	var n int64
	for _, v := range m {
		n += v
	}
	return n
}

func maxFDs(rs []soakReading) int {
	m := 0
	for _, s := range rs {
		m = max(m, s.FDs)
	}
	return m
}

// thirds returns the medians of f over the first and the last third of
// rs (at least one reading each); readings where f is negative (a
// /metrics scrape that failed) are left out.
func thirds(rs []soakReading, f func(soakReading) float64) (first, last float64) {
	var vs []float64
	for _, r := range rs {
		if v := f(r); v >= 0 {
			vs = append(vs, v)
		}
	}
	if len(vs) == 0 {
		return none, none
	}
	n := max(len(vs)/3, 1)
	return median(vs[:n]), median(vs[len(vs)-n:])
}

func median(vs []float64) float64 {
	s := slices.Clone(vs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
