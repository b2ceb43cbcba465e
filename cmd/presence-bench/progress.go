package main

import (
	"fmt"
	"io"
	"sync"
	"time"
)

// progress prints one line a second to stderr: the phase that runs and what
// its callback says (rates, held connections, errors, server RSS).
type progress struct {
	w     io.Writer
	mu    sync.Mutex // guards: phase, line, began
	phase string
	line  func() string
	began time.Time
	stop  chan struct{}
	done  chan struct{}
}

func newProgress(w io.Writer) *progress {
	p := &progress{w: w, stop: make(chan struct{}), done: make(chan struct{})}
	go p.loop()
	return p
}

func (p *progress) set(phase string, line func() string) {
	if p == nil {
		return
	}
	p.mu.Lock()
	p.phase, p.line, p.began = phase, line, time.Now()
	p.mu.Unlock()
}

// logf prints a line at once, for events (phase starts, limits reached).
func (p *progress) logf(format string, args ...any) {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.w, "[%6.1fs] "+format+"\n", append([]any{time.Since(t0).Seconds()}, args...)...)
}

func (p *progress) loop() {
	defer close(p.done)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-tick.C:
			p.mu.Lock()
			phase, line, began := p.phase, p.line, p.began
			p.mu.Unlock()
			if line == nil {
				continue
			}
			s := line()
			p.mu.Lock()
			fmt.Fprintf(p.w, "[%6.1fs] %s +%.0fs: %s\n", time.Since(t0).Seconds(), phase, time.Since(began).Seconds(), s)
			p.mu.Unlock()
		}
	}
}

func (p *progress) close() {
	if p == nil {
		return
	}
	close(p.stop)
	<-p.done
}
