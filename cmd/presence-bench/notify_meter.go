package main

import (
	"fmt"
	"sync/atomic"
	"time"
)

// notifyMeter is what a closed-loop notify run counts, whether its
// clients POST or send over the app channel: requests and items answered
// inside the measured window, errors, one latency sampler per client, and
// the CPU used from the end of the warm-up on. The progress line shows
// the items stored per second while it runs.
type notifyMeter struct {
	errs          errCounts
	posts, stored atomic.Int64
	samplers      []*sampler

	prog     *progress
	meterc   chan cpuMeter
	cpuTimer *time.Timer
}

// startNotifyMeter starts counting for clients clients; the CPU meter
// starts once warm has passed.
func startNotifyMeter(t *target, phase string, clients int, warm time.Duration, prog *progress) *notifyMeter {
	m := &notifyMeter{samplers: make([]*sampler, clients), prog: prog, meterc: make(chan cpuMeter, 1)}
	for i := range m.samplers {
		m.samplers[i] = &sampler{max: 1 << 20}
	}
	var lastStored int64
	prog.set(phase, func() string {
		s := m.stored.Load()
		line := fmt.Sprintf("stored %s/s errors %d", formatNum(float64(s-lastStored)), m.errs.total())
		lastStored = s
		return line
	})
	m.cpuTimer = time.AfterFunc(warm, func() { m.meterc <- startCPU(t.cpuPids()) })
	return m
}

// finish stops the meter, once every client is done, and fills res with
// what it counted over a window of dur.
func (m *notifyMeter) finish(t *target, res *notifyResult, dur time.Duration) {
	defer m.prog.set("", nil)
	m.cpuTimer.Stop()
	res.Server = t.sample()
	var use cpuUse
	select {
	case cm := <-m.meterc:
		use = cm.read()
	default:
	}
	res.OtherCPU = use.Other
	var all []int64
	for _, s := range m.samplers {
		all = append(all, s.samples...)
	}
	res.Window = dur.Seconds()
	res.Posts, res.Stored = m.posts.Load(), m.stored.Load()
	res.PostsPerSec = float64(res.Posts) / res.Window
	res.PerSec = float64(res.Stored) / res.Window
	res.Latency = summarize(all)
	if res.Stored > 0 && len(t.cpuPids()) > 0 {
		res.CPUPerItem = use.Server / float64(res.Stored) * 1e6
		res.CPUByRole = t.cpuByRole(use.Each, res.Stored)
	}
	if res.Posts > 0 {
		res.ToolCPU = use.Tool / float64(res.Posts) * 1e6
	}
	res.Errors = m.errs.snapshot()
}
