package ws

import (
	"sync"
	"time"

	"github.com/presence-service/presence/core"
)

// liveDevices is every open device channel, sharded so that connects on
// both cores do not meet on one lock.
type liveDevices struct {
	shards [32]struct {
		mu sync.Mutex // guards: m
		m  map[*device]struct{}
	}
}

func (l *liveDevices) add(d *device) {
	sh := &l.shards[d.shard]
	sh.mu.Lock()
	if sh.m == nil {
		sh.m = make(map[*device]struct{})
	}
	sh.m[d] = struct{}{}
	sh.mu.Unlock()
}

func (l *liveDevices) remove(d *device) {
	sh := &l.shards[d.shard]
	sh.mu.Lock()
	delete(sh.m, d)
	sh.mu.Unlock()
}

// sweep replaces a timer per connection: one goroutine walks the devices,
// pings those that have been quiet for half of device.idle_timeout, drops
// those quiet for all of it, and ends sessions older than
// device.max_session (errno -3).
func (s *Server) sweep(stop <-chan struct{}) {
	idle := s.cfg.Device.IdleTimeout.Duration
	maxSession := s.cfg.Device.MaxSession.Duration
	every := min(idle/4, maxSession/4, time.Second)
	every = max(every, 10*time.Millisecond)
	t := time.NewTicker(every)
	defer t.Stop()
	var batch []*device
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		now := time.Now()
		for i := range s.live.shards {
			sh := &s.live.shards[i]
			sh.mu.Lock()
			for d := range sh.m {
				batch = append(batch, d)
			}
			sh.mu.Unlock()
			for _, d := range batch {
				quiet := now.Sub(d.t.LastRead())
				switch {
				case quiet >= idle:
					d.t.Drop(closeGoingAway, idleReason) // answered nothing, not even our pings
					continue
				case quiet >= idle/2 && now.Sub(time.Unix(0, d.lastPing.Load())) >= idle/2:
					d.lastPing.Store(now.UnixNano())
					d.t.Ping()
				}
				if sess := d.session.Load(); sess != nil && now.Sub(sess.CreatedAt()) >= maxSession && !d.expired.Swap(true) {
					d.Close(core.ErrnoSessionTooOld)
				}
			}
			clear(batch)
			batch = batch[:0]
		}
	}
}
