package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// connectOpts shapes one connect run.
type connectOpts struct {
	n           int
	conc        int   // dialers at once
	checkpoints []int // held counts at which server memory is read
	hold        time.Duration
	settle      time.Duration // pause before reading memory, so the figure is not mid-burst
	fdLimit     uint64        // this process's file limit
	users       []userCred    // whose assertions the devices use; all the target's when nil
}

// checkpoint is the server's state with held connections open.
type checkpoint struct {
	Held       int        `json:"held"`
	Server     procSample `json:"server"`
	KiBPerConn float64    `json:"kib_per_conn"`   // (RSS - RSS before any device) / held
	SlopeKiB   float64    `json:"slope_kib"`      // RSS growth per connection since the previous checkpoint
	ConnectsPS float64    `json:"connects_per_s"` // during the segment that led here
}

type connectResult struct {
	Target         string             `json:"target"`
	Asked          int                `json:"asked"`
	Held           int                `json:"held"`
	StillHeld      int                `json:"still_held_after_hold"`
	ConnectsPerSec float64            `json:"connects_per_s"`
	CPUPerConnect  float64            `json:"server_cpu_us_per_connect"`
	CPUByRole      map[string]float64 `json:"server_cpu_us_per_connect_by_role,omitempty"`
	ToolCPU        float64            `json:"tool_cpu_us_per_connect"` // this process: what the load costs to make
	Latency        latencySummary     `json:"connect_latency"`
	Base           procSample         `json:"server_base"`
	Checkpoints    []checkpoint       `json:"checkpoints"`
	Stopped        string             `json:"stopped,omitempty"` // why it held fewer than asked
	Errors         map[string]int64   `json:"errors"`
}

// fleet is a set of idle devices held open. Each gets a reader, so the
// server's WebSocket pings are answered and a drop is noticed; readers start
// after each burst of dials rather than with each device, so that their
// goroutine and stack growth are not counted against the server's connect
// rate (the server's idle timeout is far longer than a burst).
type fleet struct {
	mu      sync.Mutex // guards: devs, started
	devs    []*device
	started int // devs[:started] have their reader
	alive   atomic.Int64
	wg      sync.WaitGroup
	errs    errCounts
}

func (f *fleet) add(d *device) {
	f.mu.Lock()
	f.devs = append(f.devs, d)
	f.mu.Unlock()
	f.alive.Add(1)
}

// startReaders gives every device added since the last call its reader.
func (f *fleet) startReaders() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, d := range f.devs[f.started:] {
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			defer f.alive.Add(-1)
			for {
				if _, _, err := d.conn.ReadMessage(); err != nil {
					return
				}
			}
		}()
	}
	f.started = len(f.devs)
}

func (f *fleet) close() {
	f.mu.Lock()
	devs := f.devs
	unread := len(f.devs) - f.started
	f.devs, f.started = nil, 0
	f.mu.Unlock()
	for _, d := range devs {
		d.conn.Close()
	}
	f.alive.Add(-int64(unread))
	f.wg.Wait()
}

// fdBudget is how many more sockets this process may open, keeping a margin
// for the app channels, HTTP clients and the files Go itself needs.
func fdBudget(limit uint64) int {
	return int(limit) - openFiles() - 200
}

// holdDevices connects up to o.n idle devices, pausing at each checkpoint to
// read the server's memory. It stops early, and says why, at this process's
// file limit or when the server keeps refusing.
func holdDevices(ctx context.Context, t *target, o connectOpts, f *fleet, prog *progress) connectResult {
	res := connectResult{Target: t.name, Asked: o.n}
	if budget := fdBudget(o.fdLimit); o.n > budget {
		res.Stopped = fmt.Sprintf("this tool's file limit (%d open files) allows %d device sockets, not %d: holding %d",
			o.fdLimit, budget, o.n, budget)
		prog.logf("connect %s: %s", t.name, res.Stopped)
		o.n = max(budget, 0)
	}
	time.Sleep(o.settle)
	res.Base = t.sample()
	if room := int(res.Base.FDLimit) - res.Base.FDs - 50; res.Base.FDLimit > 0 && o.n > room {
		prog.logf("connect %s: WARNING the server's file limit (%d, %d in use) leaves room for about %d devices, %d asked",
			t.name, res.Base.FDLimit, res.Base.FDs, room, o.n)
	}
	run := runSeq.Add(1)
	apps := []int{t.apps[0].ID}
	users := o.users
	if len(users) == 0 {
		users = t.users
	}
	var next, fails, consecutive, reserved atomic.Int64
	var stop atomic.Value // string: why dialing stopped
	var mu sync.Mutex     // guards: lat
	lat := &sampler{max: 1 << 20}
	maxAttempts := int64(o.n + o.n/10 + 100) // errors are retried, but not forever

	defer prog.set("", nil)
	prog.set("connect "+t.name, func() string {
		return fmt.Sprintf("held %d/%d errors %d server RSS %s KiB", f.alive.Load(), o.n, f.errs.total()+fails.Load(), formatNum(float64(t.rssKiB())))
	})
	var dialTime time.Duration
	var toolDial float64                         // tool CPU seconds while dialing
	cpuDial := make([]float64, len(t.cpuPids())) // server CPU seconds while dialing, by process
	prevHeld, prevRSS := 0, res.Base.RSSKiB
	for _, cp := range append(sortedCheckpoints(o.checkpoints, o.n), o.n) {
		if cp <= prevHeld || stop.Load() != nil || ctx.Err() != nil {
			continue
		}
		segStart := time.Now()
		cpuStart, toolStart := treeCPUEach(t.cpuPids()), readCPU(os.Getpid())
		var wg sync.WaitGroup
		for range o.conc {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for ctx.Err() == nil && stop.Load() == nil {
					// Reserve a slot before dialing, so that conc dialers
					// stop exactly at the checkpoint instead of past it.
					if reserved.Add(1) > int64(cp) {
						reserved.Add(-1)
						return
					}
					i := next.Add(1) - 1
					if i >= maxAttempts {
						stop.CompareAndSwap(nil, "too many failed connects")
						return
					}
					u := users[int(i)%len(users)]
					start := now()
					d, err := connectDevice(ctx, t.spreadDialer(int(i)), u.Assertion, apps, fmt.Sprintf("c%d-%d", run, i))
					if err != nil {
						reserved.Add(-1)
						fails.Add(1)
						f.errs.addErr(err)
						if errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) {
							stop.CompareAndSwap(nil, fmt.Sprintf("this tool reached its file limit (%d) at %d held", o.fdLimit, f.alive.Load()))
						}
						if consecutive.Add(1) >= 500 {
							stop.CompareAndSwap(nil, fmt.Sprintf("500 connects failed in a row at %d held (%s): the server's limit?", f.alive.Load(), errKind(err)))
						}
						time.Sleep(10 * time.Millisecond)
						continue
					}
					consecutive.Store(0)
					mu.Lock()
					lat.add(now() - start)
					mu.Unlock()
					f.add(d)
				}
			}()
		}
		wg.Wait()
		seg := time.Since(segStart)
		dialTime += seg
		for i, v := range treeCPUEach(t.cpuPids()) {
			cpuDial[i] += v - cpuStart[i]
		}
		toolDial += readCPU(os.Getpid()) - toolStart
		f.startReaders()
		held := int(f.alive.Load())
		time.Sleep(o.settle)
		s := t.sample()
		c := checkpoint{Held: held, Server: s, ConnectsPS: float64(held-prevHeld) / seg.Seconds()}
		if held > 0 {
			c.KiBPerConn = float64(s.RSSKiB-res.Base.RSSKiB) / float64(held)
		}
		if held > prevHeld {
			c.SlopeKiB = float64(s.RSSKiB-prevRSS) / float64(held-prevHeld)
		}
		res.Checkpoints = append(res.Checkpoints, c)
		prog.logf("connect %s: %d held, %.2f KiB/conn, slope %.2f; server %s",
			t.name, held, c.KiBPerConn, c.SlopeKiB, fmtSample(s))
		prevHeld, prevRSS = held, s.RSSKiB
	}
	if v := stop.Load(); v != nil && res.Stopped == "" {
		res.Stopped = v.(string)
		prog.logf("connect %s: stopped: %s", t.name, res.Stopped)
	}
	res.Held = int(f.alive.Load())
	if dialTime > 0 {
		res.ConnectsPerSec = float64(res.Held) / dialTime.Seconds()
	}
	if res.Held > 0 && len(t.cpuPids()) > 0 {
		var total float64
		for _, v := range cpuDial {
			total += v
		}
		res.CPUPerConnect = total / float64(res.Held) * 1e6
		res.CPUByRole = t.cpuByRole(cpuDial, int64(res.Held))
	}
	if res.Held > 0 {
		res.ToolCPU = toolDial / float64(res.Held) * 1e6
	}
	res.Latency = summarize(lat.samples)
	return res
}

func sortedCheckpoints(cps []int, n int) []int {
	var out []int
	for _, c := range cps {
		if c > 0 && c < n && (len(out) == 0 || c > out[len(out)-1]) {
			out = append(out, c)
		}
	}
	return out
}

func fmtSample(s procSample) string {
	out := fmt.Sprintf("RSS %s KiB, %d threads, %d fds", formatNum(float64(s.RSSKiB)), s.Threads, s.FDs)
	if s.Devices > 0 {
		out += fmt.Sprintf(", %d devices by its count", s.Devices)
	}
	if s.Goroutines >= 0 {
		out += fmt.Sprintf(", %d goroutines", s.Goroutines)
	}
	return out
}

// runConnect holds the devices for o.hold, checks they are all still there,
// and closes them.
func runConnect(ctx context.Context, t *target, o connectOpts, prog *progress) connectResult {
	var f fleet
	defer f.close()
	res := holdDevices(ctx, t, o, &f, prog)
	select {
	case <-ctx.Done():
	case <-time.After(o.hold):
	}
	res.StillHeld = int(f.alive.Load())
	res.Errors = f.errs.snapshot()
	return res
}
