package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// The soak scenario (issue 21): many devices flapping (connect, online,
// away, disconnect, again) while apps watch, for a long time, on Presence
// only. What it shows is that nothing grows that should not: the server's
// RSS, goroutines and open files at the start of the steady state and at
// its end, with samples in between. It is not part of CI; the README
// gives the command:
//
//	presence-bench -spawn -apps 10 -users 1000 -soak-devices 10000 -soak-for 10m soak

// soakStats are the counters the devices and apps share.
type soakStats struct {
	connects  atomic.Int64 // connects answered with a session
	alive     atomic.Int64 // devices connected now
	statuses  atomic.Int64 // status requests sent
	appFrames atomic.Int64 // arrays the apps received
	errs      errCounts
}

// soakSample is one reading of the server during the soak.
type soakSample struct {
	At      float64    `json:"at_s"` // seconds since the steady state began
	Server  procSample `json:"server"`
	Alive   int64      `json:"devices_connected_tool"`
	Connect int64      `json:"connects"`
}

type soakResult struct {
	Devices  int              `json:"devices"`
	Apps     int              `json:"apps"`
	Flap     string           `json:"flap"`
	Duration string           `json:"duration"`
	Start    soakSample       `json:"start"`
	End      soakSample       `json:"end"`
	After    procSample       `json:"after_all_closed"`
	Series   []soakSample     `json:"series"`
	Statuses int64            `json:"statuses"`
	Frames   int64            `json:"app_frames"`
	Errors   map[string]int64 `json:"errors"`
}

func (b *bench) soak(ctx context.Context) error {
	t := b.pres
	if t == nil {
		b.prog.logf("soak: needs Presence, skipped")
		return nil
	}
	if t.grantErr != nil {
		return fmt.Errorf("soak needs granted users: %w", t.grantErr)
	}
	o := b.o
	if need := o.soakDevices + len(t.apps) + 200; fdBudget(b.fdLimit) < need {
		return fmt.Errorf("soak: %d devices need %d open files, this process may open %d more", o.soakDevices, need, fdBudget(b.fdLimit))
	}
	res := soakResult{Devices: o.soakDevices, Apps: len(t.apps), Flap: o.soakFlap.String(), Duration: o.soakFor.String()}
	var st soakStats
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	var wg sync.WaitGroup

	// The apps: every one on its WebSocket channel, reading all it gets.
	for _, a := range t.apps {
		c, err := connectApp(ctx, t.d, a.ID, a.Key)
		if err != nil {
			return fmt.Errorf("soak: %w", err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer c.Close()
			go func() { <-ctx.Done(); c.Close() }()
			for {
				if _, _, err := c.ReadMessage(); err != nil {
					return
				}
				st.appFrames.Add(1)
			}
		}()
	}

	// The devices: user i%users, device id d<i>, each its own loop.
	appIDs := t.appIDs(false)
	dials := make(chan struct{}, o.connConc)
	for i := range o.soakDevices {
		u := t.users[i%len(t.users)]
		wg.Add(1)
		go func() {
			defer wg.Done()
			soakDevice(ctx, t, u.Assertion, "d"+strconv.Itoa(i), appIDs, o.soakFlap, dials, &st, uint64(i))
		}()
	}

	// Ramp-up: every device connected once, or one flap period.
	b.prog.set("soak", func() string {
		return fmt.Sprintf("%d devices connected, %d connects, %d statuses, %d app arrays",
			st.alive.Load(), st.connects.Load(), st.statuses.Load(), st.appFrames.Load())
	})
	rampEnd := time.Now().Add(o.soakFlap + time.Minute)
	for st.connects.Load() < int64(o.soakDevices) && time.Now().Before(rampEnd) && ctx.Err() == nil {
		sleepCtx(ctx, time.Second)
	}
	began := time.Now()
	sample := func() soakSample {
		return soakSample{At: time.Since(began).Seconds(), Server: t.sample(), Alive: st.alive.Load(), Connect: st.connects.Load()}
	}
	res.Start = sample()
	b.prog.logf("soak: steady state: %d devices, server RSS %d MiB, %d goroutines, %d fds",
		res.Start.Alive, res.Start.Server.RSSKiB/1024, res.Start.Server.Goroutines, res.Start.Server.FDs)
	res.Series = append(res.Series, res.Start)
	for time.Since(began) < o.soakFor && ctx.Err() == nil {
		sleepCtx(ctx, min(o.soakSample, o.soakFor-time.Since(began)))
		s := sample()
		res.Series = append(res.Series, s)
		b.prog.logf("soak: %4.0fs: %d devices, %d connects, server RSS %d MiB, %d goroutines, %d fds",
			s.At, s.Alive, s.Connect, s.Server.RSSKiB/1024, s.Server.Goroutines, s.Server.FDs)
	}
	res.End = res.Series[len(res.Series)-1]
	stop()
	wg.Wait()
	b.prog.set("soak", func() string { return "all closed; waiting out the disconnect grace" })
	// Once every socket is closed and the disconnect grace has passed, the
	// server should be back near where it idles.
	time.Sleep(12 * time.Second)
	res.After = t.sample()
	b.prog.set("", nil)
	res.Statuses, res.Frames, res.Errors = st.statuses.Load(), st.appFrames.Load(), st.errs.snapshot()

	b.rep.detail("soak", res)
	b.rep.errs("soak", res.Errors)
	mib := func(s procSample) float64 { return float64(s.RSSKiB) / 1024 }
	rss := make([]int64, 0, len(res.Series))
	for _, s := range res.Series[len(res.Series)/2:] {
		rss = append(rss, s.Server.RSSKiB)
	}
	trend := slope(rss) * o.soakFor.Seconds() / o.soakSample.Seconds() / 1024 // MiB over the whole soak, at the second half's slope
	startG, endG := float64(res.Start.Server.Goroutines), float64(res.End.Server.Goroutines)
	b.rep.add(
		newRow("soak", fmt.Sprintf("devices flapping (every ~%s), %d apps, %s", o.soakFlap, len(t.apps), o.soakFor), "", float64(res.End.Alive), none),
		newRow("soak", "connects during the soak", "", float64(res.End.Connect-res.Start.Connect), none),
		newRow("soak", "server RSS at start", "MiB", mib(res.Start.Server), none),
		newRow("soak", "server RSS at end", "MiB", mib(res.End.Server), none).
			atMost(mib(res.End.Server), 1.2*mib(res.Start.Server)+32, "≤ 1.2×start + 32 MiB"),
		newRow("soak", "server RSS trend of the 2nd half, × the soak", "MiB", trend, none),
		newRow("soak", "server goroutines at start", "", startG, none),
		newRow("soak", "server goroutines at end", "", endG, none).
			atMost(endG, 1.1*startG+200, "≤ 1.1×start + 200"),
		newRow("soak", "server open files at start", "", float64(res.Start.Server.FDs), none),
		newRow("soak", "server open files at end", "", float64(res.End.Server.FDs), none),
		newRow("soak", "server goroutines, all closed", "", float64(res.After.Goroutines), none),
		newRow("soak", "server RSS, all closed", "MiB", mib(res.After), none),
	)
	return nil
}

// soakDevice is one device's life: connect, online, away half-way
// through a hold of flap/2 to 3·flap/2, close, a pause of up to 2 s (the
// disconnect grace then tells the apps offline, or the reconnect cancels
// it), again, until ctx ends.
func soakDevice(ctx context.Context, t *target, assertion, id string, appIDs []int, flap time.Duration, dials chan struct{}, st *soakStats, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 0x50a4))
	// The first connects spread over one flap period, not all at once.
	sleepCtx(ctx, time.Duration(rng.Int64N(int64(flap))))
	var buf []byte
	for ctx.Err() == nil {
		select {
		case dials <- struct{}{}:
		case <-ctx.Done():
			return
		}
		d, err := connectDevice(ctx, t.d, assertion, appIDs, id)
		<-dials
		if err != nil {
			if ctx.Err() == nil {
				st.errs.addErr(err)
				sleepCtx(ctx, time.Second)
			}
			continue
		}
		st.connects.Add(1)
		st.alive.Add(1)
		done := make(chan struct{})
		go func() {
			defer close(done)
			for {
				if _, _, err := d.conn.ReadMessage(); err != nil {
					return
				}
			}
		}()
		hold := flap/2 + time.Duration(rng.Int64N(int64(flap)))
		for i, status := range []string{"online", "unavailable"} {
			buf = append(buf[:0], `{"type":"status","session_id":"`...)
			buf = append(append(append(buf, d.session...), `","status":"`...), status...)
			buf = append(buf, `"}`...)
			if err := d.conn.WriteText(buf); err != nil {
				if ctx.Err() == nil {
					st.errs.addErr(err)
				}
				break
			}
			st.statuses.Add(1)
			if i == 0 {
				sleepCtx(ctx, hold/2)
			}
		}
		sleepCtx(ctx, hold/2)
		d.conn.Close()
		<-done
		st.alive.Add(-1)
		sleepCtx(ctx, time.Duration(rng.Int64N(int64(2*time.Second))))
	}
}

// sleepCtx waits d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) {
	if d <= 0 {
		return
	}
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-tm.C:
	case <-ctx.Done():
	}
}
