package main

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// statusOpts shapes one status run.
type statusOpts struct {
	devices    int
	inflight   int     // closed loop: updates in flight at once (each sender cycles over its share of devices)
	rate       float64 // total updates/s; 0 runs closed-loop (next update on each answer)
	dur, warm  time.Duration
	drain      time.Duration // how long apps keep reading after the last send
	xmppApps   int           // how many of the apps use the XMPP component channel (targets that have one)
	withSlow   bool          // devices also show themselves to the slow app
	stallSlow  bool          // the slow app connects and then reads nothing until the end
	maxSamples int
}

// statusResult is one status run on one target. Counts are for updates sent
// inside the measured window (after warm-up), whenever they arrived.
type statusResult struct {
	Target          string             `json:"target"`
	Mode            string             `json:"mode"`
	TargetRate      float64            `json:"target_rate,omitempty"`
	Devices         int                `json:"devices"`
	Apps            int                `json:"apps"`
	XMPPApps        int                `json:"xmpp_apps"`
	Window          float64            `json:"window_s"`
	Sent            int64              `json:"sent"`
	Acked           int64              `json:"acked"`
	Delivered       int64              `json:"delivered"`
	UpdatesPerSec   float64            `json:"updates_per_s"`
	DeliveredPerSec float64            `json:"delivered_per_s"`
	Latency         latencySummary     `json:"latency"`
	SlowFrames      int64              `json:"slow_app_frames,omitempty"`
	UpdatesPerFrame float64            `json:"updates_per_app_frame,omitempty"` // WebSocket apps: the window\'s updates per frame that carried some
	Errors          map[string]int64   `json:"errors"`
	CPUPerUpdate    float64            `json:"server_cpu_us_per_update"` // server CPU in the window / updates acked
	CPUByRole       map[string]float64 `json:"server_cpu_us_per_update_by_role,omitempty"`
	ToolCPU         float64            `json:"tool_cpu_us_per_update"` // the same for this process
	OtherCPU        float64            `json:"other_cpu_share"`        // share of the machine other processes used
	ServerBefore    procSample         `json:"server_before"`
	ServerMid       procSample         `json:"server_mid"` // halfway through the window
	RSSSeries       []int64            `json:"rss_kib_each_second"`
	ServerAfter     procSample         `json:"server_after"`
}

var runSeq atomic.Int64 // makes device ids unique per run: no run replaces another's devices

// runStatus connects the apps and devices, sends for warm+dur, lets the apps
// drain, and measures what reached the apps.
func runStatus(ctx context.Context, t *target, o statusOpts, prog *progress) (statusResult, error) {
	res := statusResult{Target: t.name, Mode: "closed-loop", TargetRate: o.rate, Apps: len(t.apps)}
	if t.grantErr != nil {
		return res, t.grantErr
	}
	if o.rate > 0 {
		res.Mode = "open-loop"
	}
	if o.drain == 0 {
		o.drain = time.Second
	}
	if o.maxSamples == 0 {
		o.maxSamples = 4 << 20
	}
	o.devices = min(o.devices, len(t.users))
	res.Devices = o.devices
	var errs errCounts
	run := runSeq.Add(1)
	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	// Window bounds are set once everything is connected; readers wait for them.
	var warmStart, end atomic.Int64
	end.Store(1<<62 - 1)
	ready := make(chan struct{})
	var readyOnce sync.Once
	start := func() { readyOnce.Do(func() { close(ready) }) }
	defer start() // an early return must still release the readers

	// Apps.
	var delivered, wsDelivered, appFrames atomic.Int64 // all apps; WebSocket apps and their frames
	samplers := make([]*sampler, len(t.apps))
	var conns []*wsConn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for i, a := range t.apps {
		s := &sampler{max: o.maxSamples / len(t.apps)}
		samplers[i] = s
		if i < o.xmppApps && t.xmpp.addr != "" {
			x, err := connectXMPPApp(ctx, t.statusAppDialer(), t.xmpp.addr, a.ID, t.xmpp.domain, a.Key)
			if err != nil {
				return res, err
			}
			res.XMPPApps++
			defer x.close()
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-ready
				x.read(&warmStart, &end, o.drain, func(stamp, at int64) {
					delivered.Add(1)
					s.add(at - stamp)
				})
			}()
			continue
		}
		c, err := connectApp(ctx, t.statusAppDialer(), a.ID, a.Key)
		if err != nil {
			return res, err
		}
		conns = append(conns, c)
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-ready
			n := readApp(c, &warmStart, &end, o.drain, func(stamp, at int64) {
				delivered.Add(1)
				wsDelivered.Add(1)
				s.add(at - stamp)
			})
			appFrames.Add(n)
		}()
	}
	var slowFrames atomic.Int64
	if o.withSlow {
		c, err := connectApp(ctx, t.statusAppDialer(), t.slow.ID, t.slow.Key)
		if err != nil {
			return res, err
		}
		conns = append(conns, c)
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-ready
			if o.stallSlow { // read nothing: the server's outbox for it must coalesce
				select {
				case <-ctx.Done():
				case <-time.After(time.Duration(end.Load() - now())):
				}
			}
			readApp(c, &warmStart, &end, o.drain, func(int64, int64) { slowFrames.Add(1) })
		}()
	}

	// Devices.
	apps := t.appIDs(o.withSlow)
	devs := make([]*device, o.devices)
	err := parallel(ctx, o.devices, 16, func(i int) error {
		d, err := connectDevice(ctx, t.statusDialer(i), t.users[i].Assertion, apps, fmt.Sprintf("s%d-%d", run, i))
		if err != nil {
			return err
		}
		devs[i] = d
		return nil
	})
	defer func() {
		for _, d := range devs {
			if d != nil {
				d.conn.Close()
			}
		}
	}()
	if err != nil {
		return res, fmt.Errorf("connecting devices: %w", err)
	}
	res.ServerBefore = t.sample()

	begin := now()
	warmStart.Store(begin + int64(o.warm))
	end.Store(begin + int64(o.warm+o.dur))
	start()
	meterc := make(chan cpuMeter, 1)
	cpuTimer := time.AfterFunc(o.warm, func() { meterc <- startCPU(t.cpuPids()) })
	defer cpuTimer.Stop()
	rssDone := make(chan struct{})
	go func() { // server RSS once a second through the window, for its trend
		defer close(rssDone)
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for t.pid > 0 && now() < end.Load() {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				if now() >= warmStart.Load() {
					res.RSSSeries = append(res.RSSSeries, t.rssKiB())
				}
			}
		}
	}()
	midDone := make(chan struct{})
	midTimer := time.AfterFunc(o.warm+o.dur/2, func() { res.ServerMid = t.sample(); close(midDone) })
	defer midTimer.Stop()

	var sent, acked atomic.Int64
	var lastSent, lastDel int64
	defer prog.set("", nil) // no stale progress lines in the pause that follows
	prog.set(fmt.Sprintf("status %s %s", t.name, res.Mode), func() string {
		s, dl := sent.Load(), delivered.Load()
		line := fmt.Sprintf("sent %s/s delivered %s/s errors %d", formatNum(float64(s-lastSent)), formatNum(float64(dl-lastDel)), errs.total())
		lastSent, lastDel = s, dl
		return line
	})
	if o.rate > 0 {
		openLoop(devs, o.rate, &warmStart, &end, o.drain, &sent, &acked, &errs, &wg)
	} else {
		senders := min(max(o.inflight, 1), len(devs))
		if o.inflight == 0 {
			senders = len(devs)
		}
		for w := range senders {
			var mine []*device
			for i := w; i < len(devs); i += senders {
				mine = append(mine, devs[i])
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				closedLoop(mine, &warmStart, &end, &sent, &acked, &errs)
			}()
		}
	}
	// Wait for the end of the window plus the drain, then sample the server
	// while the sockets are still open.
	select {
	case <-ctx.Done():
		<-rssDone // it stops on ctx too; res is not to be shared
		return res, ctx.Err()
	case <-time.After(time.Duration(end.Load()-now()) + o.drain):
	}
	res.ServerAfter = t.sample()
	cpuTimer.Stop()
	<-midDone // fired long ago: the window is over
	<-rssDone
	var use cpuUse
	select {
	case m := <-meterc:
		use = m.read()
	default: // a window shorter than the warm-up: nothing measured
	}
	res.OtherCPU = use.Other
	cancel()
	for _, d := range devs {
		d.conn.Close()
	}
	for _, c := range conns {
		c.Close()
	}
	wg.Wait()

	var all []int64
	for _, s := range samplers {
		all = append(all, s.samples...)
	}
	res.Window = o.dur.Seconds()
	res.Sent, res.Acked, res.Delivered = sent.Load(), acked.Load(), delivered.Load()
	res.UpdatesPerSec = float64(res.Acked) / res.Window
	res.DeliveredPerSec = float64(res.Delivered) / res.Window
	res.Latency = summarize(all)
	if res.Acked > 0 && len(t.cpuPids()) > 0 {
		res.CPUPerUpdate = use.Server / float64(res.Acked) * 1e6
		res.CPUByRole = t.cpuByRole(use.Each, res.Acked)
	}
	if res.Acked > 0 {
		res.ToolCPU = use.Tool / float64(res.Acked) * 1e6
	}
	res.SlowFrames = slowFrames.Load()
	if f := appFrames.Load(); f > 0 {
		res.UpdatesPerFrame = float64(wsDelivered.Load()) / float64(f)
	}
	res.Errors = errs.snapshot()
	return res, nil
}

// deliveredShare is the part of the updates sent that reached every app.
// Below 1 without errors, the rest was coalesced: a PUID's pending update
// replaced by a newer one before the app channel took it (PROTOCOL §3).
func (r statusResult) deliveredShare() float64 {
	if r.Sent == 0 || r.Apps == 0 {
		return none
	}
	return float64(r.Delivered) / float64(r.Sent*int64(r.Apps))
}

// readApp reads an app channel until the drain after the window ends and
// calls fn(stamp, arrival) for each update sent inside the window. It
// returns how many frames carried such updates: a server that writes
// several updates in one frame spends less per update.
func readApp(c *wsConn, warmStart, end *atomic.Int64, drain time.Duration, fn func(stamp, at int64)) (frames int64) {
	c.SetReadDeadline(time.Now().Add(time.Duration(end.Load()-now()) + drain))
	lo, hi := warmStart.Load(), end.Load()
	for {
		_, b, err := c.ReadMessage()
		if err != nil {
			return frames
		}
		at := now()
		in := false
		scanStamps(b, func(stamp int64) {
			if stamp >= lo && stamp < hi {
				fn(stamp, at)
				in = true
			}
		})
		if in {
			frames++
		}
	}
}

// closedLoop sends the next update as soon as the previous one is answered,
// cycling over its devices: with enough senders it finds the rate the server
// sustains, and with many devices per sender each PUID changes only a few
// times a second, as real ones do.
func closedLoop(devs []*device, warmStart, end *atomic.Int64, sent, acked *atomic.Int64, errs *errCounts) {
	buf := make([]byte, 0, 160)
	lo, hi := warmStart.Load(), end.Load()
	// One deadline per socket for the whole run, 10 s past its end, not
	// one per operation: each moves a runtime timer, on the cores the
	// server uses.
	deadline := time.Now().Add(time.Duration(hi-now()) + 10*time.Second)
	for _, d := range devs {
		d.conn.SetDeadline(deadline)
	}
	for seq := int64(0); ; seq++ {
		d := devs[seq%int64(len(devs))]
		stamp := now()
		if stamp >= hi {
			return
		}
		buf = appendStatus(buf[:0], d.session, seq/int64(len(devs)), stamp)
		if err := d.conn.WriteText(buf); err != nil {
			errs.addErr(err)
			return
		}
		inWindow := stamp >= lo
		if inWindow {
			sent.Add(1)
		}
		for {
			_, b, err := d.conn.ReadMessage()
			if err != nil {
				errs.addErr(err)
				return
			}
			isAnswer, err := classify(b)
			if !isAnswer {
				continue
			}
			if err != nil {
				errs.addErr(err)
				if en, ok := err.(*errnoError); ok && en.Errno < 0 {
					return
				}
				time.Sleep(10 * time.Millisecond) // rate limited or refused: do not spin
			} else if inWindow {
				acked.Add(1)
			}
			break
		}
	}
}

// openLoop paces sends at rate updates/s in total, whatever the answers do:
// latency measured this way includes queueing, as a real device fleet sees
// it. Four pacers share the devices; each device has one reader for answers.
func openLoop(devs []*device, rate float64, warmStart, end *atomic.Int64, drain time.Duration,
	sent, acked *atomic.Int64, errs *errCounts, wg *sync.WaitGroup) {
	lo, hi := warmStart.Load(), end.Load()
	for _, d := range devs {
		d.conn.SetWriteDeadline(time.Now().Add(time.Duration(hi-now()) + 10*time.Second)) // once: see closedLoop
		wg.Add(1)
		go func() {
			defer wg.Done()
			d.conn.SetReadDeadline(time.Now().Add(time.Duration(hi-now()) + drain))
			for {
				_, b, err := d.conn.ReadMessage()
				if err != nil {
					return
				}
				at := now()
				if isAnswer, err := classify(b); isAnswer && err != nil {
					errs.addErr(err)
				} else if isAnswer && at >= lo && at < hi {
					acked.Add(1)
				}
			}
		}()
	}
	pacers := min(4, len(devs))
	for p := range pacers {
		var mine []*device
		for i := p; i < len(devs); i += pacers {
			mine = append(mine, devs[i])
		}
		perNs := rate / float64(pacers) / 1e9
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 0, 160)
			begin := now()
			var n int64
			for {
				t := now()
				if t >= hi {
					return
				}
				due := int64(float64(t-begin) * perNs)
				for burst := 0; n < due && burst < 512; burst++ {
					d := mine[n%int64(len(mine))]
					stamp := now()
					buf = appendStatus(buf[:0], d.session, n/int64(len(mine)), stamp)
					if err := d.conn.WriteText(buf); err != nil {
						errs.addErr(err)
					} else if stamp >= lo {
						sent.Add(1)
					}
					n++
				}
				time.Sleep(200 * time.Microsecond)
			}
		}()
	}
}

// parallel runs fn(0..n-1) on workers goroutines and returns the first error.
func parallel(ctx context.Context, n, workers int, fn func(i int) error) error {
	var next atomic.Int64
	var failed atomic.Bool
	var first error
	var once sync.Once
	var wg sync.WaitGroup
	for range min(workers, max(n, 1)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil && !failed.Load() {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if err := fn(i); err != nil {
					once.Do(func() { first = err })
					failed.Store(true)
					return
				}
			}
		}()
	}
	wg.Wait()
	return first
}
