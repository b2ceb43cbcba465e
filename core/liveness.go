package core

import (
	"sync"
	"time"
)

// Node liveness (PROTOCOL §10): every router publishes a heartbeat on
// its Bus every HeartbeatInterval. A node not heard from for
// deadAfterBeats intervals is taken for dead; after device.disconnect_grace
// more, what it showed of its users is dropped from this node's view
// (forgetNode), so apps are told offline for the users whose devices did
// not come back on another node, and nothing for those who did. A node
// heard from again before then is alive after all.
//
// A node that has lost its own link hears nobody: it declares no one dead
// (LinkLost), and starts counting afresh when the link is back.

// deadAfterBeats is how many heartbeats a node may miss before it is
// taken for dead: with the 2 s default, within 10 s (PROTOCOL §10).
const deadAfterBeats = 3

type liveness struct {
	mu       sync.Mutex           // guards: lastSeen, doomed
	lastSeen map[string]time.Time // other nodes, by router id
	doomed   map[string]*time.Timer
	stop     chan struct{}
	once     sync.Once
}

func (l *liveness) init() {
	l.lastSeen = make(map[string]time.Time)
	l.doomed = make(map[string]*time.Timer)
	l.stop = make(chan struct{})
}

// heard records that node is alive, and spares it if it was doomed.
func (r *Router) heard(node string) {
	if node == r.nodeID {
		return
	}
	l := &r.live
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lastSeen[node] = time.Now()
	if t := l.doomed[node]; t != nil {
		t.Stop()
		delete(l.doomed, node)
	}
}

// runLiveness publishes this node's heartbeats and looks for silent
// nodes, until Shutdown.
func (r *Router) runLiveness() {
	every := r.opts.HeartbeatInterval
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-r.live.stop:
			return
		case <-tick.C:
		}
		r.bus.PublishHeartbeat(r.nodeID)
		r.findDeadNodes(time.Now(), time.Duration(deadAfterBeats)*every)
		r.pruneRecent(time.Now()) // sharedqueue.go
	}
}

// findDeadNodes dooms the nodes silent for longer than silence: each is
// forgotten after device.disconnect_grace unless heard from meanwhile.
func (r *Router) findDeadNodes(now time.Time, silence time.Duration) {
	l := &r.live
	l.mu.Lock()
	defer l.mu.Unlock()
	if r.linkLost.Load() {
		for node := range l.lastSeen {
			l.lastSeen[node] = now // nobody is heard without a link: count afresh once it is back
		}
		return
	}
	for node, seen := range l.lastSeen {
		if now.Sub(seen) <= silence || l.doomed[node] != nil {
			continue
		}
		r.log.Warn("a node stopped answering: its users' devices go offline after the disconnect grace unless they connect again", "node", node)
		l.doomed[node] = time.AfterFunc(r.opts.DisconnectGrace, func() {
			l.mu.Lock()
			t := l.doomed[node]
			delete(l.doomed, node)
			if t != nil {
				delete(l.lastSeen, node)
			}
			l.mu.Unlock()
			if t != nil {
				r.forgetNode(node)
			}
		})
	}
}

func (r *Router) stopLiveness() {
	r.live.once.Do(func() { close(r.live.stop) })
}
