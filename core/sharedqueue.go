package core

import (
	"context"
	"errors"
	"maps"
	"sync"
	"sync/atomic"
	"time"
)

// The app status queue of a cluster (PROTOCOL §3 and §10), when the
// Router's StatusQueue is a SharedStatusQueue: the queue lives there, not
// in any node's memory.
//
// Every node hears every NodePresence and computes every app's updates
// (presenceview.go), so each node knows them all; what a node must know
// besides is whether some node holds a channel of the app. Nodes say so on
// the Bus (AppChannels: a node's first channel of an app attached, its
// last detached; again for a starting node that asks), and node liveness
// ends what a dead node held.
//
//   - No node holds a channel of the app: each node parks the update in
//     its outbox (newest per PUID) and its writer puts it in the shared
//     queue. Every node writes what it computed, in the order it computed
//     it, so the queue ends on the status that every node ends on, and an
//     update survives the node that routed it. An outbox entry of an app
//     that some node holds by the time of the write is dropped: the
//     holder computed it too.
//   - Only other nodes hold one: the node keeps the update a while
//     (recent, recentKeep) in case they die holding it: an app channel
//     attaching here meanwhile gets what arrived since the holders were
//     last heard from, and when liveness forgets the last holder the
//     node writes what it kept.
//   - The first channel of the app on this node takes the queue: it says
//     Held on the Bus, waits for its own write in flight, takes (reads,
//     then deletes) the app's queue, and sends the channel, per PUID, the
//     newest of what it took, its own unwritten outbox entries and what it
//     kept, except for PUIDs routed here since it said Held (those follow,
//     live, so no PUID goes back to an older status). A node that had not
//     yet heard the Held may still write after the take: a sweep
//     (sweepAfter later, while the node still holds the app) deletes what
//     they wrote, which the holder had computed and sent itself.
//
// Lock order: appState.mu, then sharedQueue.mu; sharedQueue.flushMu is
// never taken under appState.mu.

// recentUpdate is an update kept while other nodes hold the app's
// channels, with when this node routed it.
type recentUpdate struct {
	StatusUpdate
	seen time.Time
}

// sharedQueue is a node's side of a SharedStatusQueue: the outbox of
// updates to write, and the writer.
type sharedQueue struct {
	q       SharedStatusQueue
	flushMu sync.Mutex // held while a write is in flight, so that a take can wait for it
	mu      sync.Mutex // guards: pending
	pending map[AppID]map[string]StatusUpdate
	kick    chan struct{} // a write is due
	started atomic.Bool   // Start began the writer
	stop    chan struct{}
	done    chan struct{}
}

func newSharedQueue(q SharedStatusQueue) *sharedQueue {
	return &sharedQueue{q: q, pending: make(map[AppID]map[string]StatusUpdate),
		kick: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
}

// park adds u to the outbox, where it replaces an older entry of its PUID.
func (s *sharedQueue) park(app AppID, u StatusUpdate) {
	s.mu.Lock()
	m := s.pending[app]
	if m == nil {
		m = make(map[string]StatusUpdate)
		s.pending[app] = m
	}
	if w, ok := m[u.PUID]; !ok || !u.At.Before(w.At) {
		m[u.PUID] = u
	}
	s.mu.Unlock()
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// fence takes the app's outbox entries out, once no write is in flight:
// whatever this node wrote is in the queue when it returns.
func (s *sharedQueue) fence(app AppID) map[string]StatusUpdate {
	s.flushMu.Lock()
	defer s.flushMu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.pending[app]
	delete(s.pending, app)
	return m
}

// sweepAfter is how long after a take its sweep runs: longer than a Bus
// message takes to reach every node and a write already begun to end.
func (r *Router) sweepAfter() time.Duration { return 2 * r.opts.HeartbeatInterval }

// recentKeep is how long a node keeps what it routed for an app held by
// other nodes: from a holder's last heartbeat until liveness forgets it.
func (r *Router) recentKeep() time.Duration {
	return time.Duration(deadAfterBeats+2)*r.opts.HeartbeatInterval + r.opts.DisconnectGrace
}

// parkShared keeps u for the cluster's queue: the app has no channel on
// this node. Called with a.mu held.
func (r *Router) parkShared(a *appState, u StatusUpdate) {
	switch {
	case a.taking:
		a.held[u.PUID] = u // the first channel here gets it after the queue
	case len(a.holders) > 0:
		if a.recent == nil {
			a.recent = make(map[string]recentUpdate)
		}
		a.recent[u.PUID] = recentUpdate{u, time.Now()}
	default:
		r.shared.park(a.id, u)
	}
}

// deliverAppChannels records whether another node holds a channel of the
// app. When the last holder lets go, what this node kept goes: the
// holder sent it to its channels.
func (r *Router) deliverAppChannels(c AppChannels) {
	if r.shared == nil || c.Node == r.nodeID {
		return
	}
	a := r.appState(c.App)
	a.mu.Lock()
	defer a.mu.Unlock()
	if c.Held {
		if a.holders == nil {
			a.holders = make(map[string]struct{})
		}
		a.holders[c.Node] = struct{}{}
		return
	}
	delete(a.holders, c.Node)
	if len(a.holders) == 0 {
		a.recent = nil
	}
}

// announceChannels says on the Bus whether this node holds channels of
// the app. Called with a.mu held, so that one app's announcements leave
// in the order its channels came and went.
func (r *Router) announceChannels(a *appState, held bool) {
	r.bus.PublishAppChannels(AppChannels{Node: r.nodeID, App: a.id, Held: held})
}

// forgetHolder drops a dead node from every app it held; an app left
// with no holder has what this node kept written to the queue, as the
// dead node may not have sent it.
func (r *Router) forgetHolder(node string) {
	if r.shared == nil {
		return
	}
	for _, a := range r.allApps() {
		a.mu.Lock()
		if _, ok := a.holders[node]; ok {
			delete(a.holders, node)
			if len(a.holders) == 0 && len(a.sinks) == 0 && !a.taking {
				for _, k := range a.recent {
					r.shared.park(a.id, k.StatusUpdate)
				}
				a.recent = nil
			}
		}
		a.mu.Unlock()
	}
}

// pruneRecent forgets what was kept for longer than recentKeep.
func (r *Router) pruneRecent(now time.Time) {
	if r.shared == nil {
		return
	}
	oldest := now.Add(-r.recentKeep())
	for _, a := range r.allApps() {
		a.mu.Lock()
		maps.DeleteFunc(a.recent, func(_ string, k recentUpdate) bool { return k.seen.Before(oldest) })
		a.mu.Unlock()
	}
}

// announceHeldApps says Held again for every app this node holds
// channels of (a starting node asked).
func (r *Router) announceHeldApps() {
	if r.shared == nil {
		return
	}
	for _, a := range r.allApps() {
		a.mu.Lock()
		if len(a.sinks) > 0 {
			r.announceChannels(a, true)
		}
		a.mu.Unlock()
	}
}

// releaseApps says, for every app this node has held a channel of, that
// it holds none (when holding says so: at Shutdown, before the node
// stops hearing updates, every app; when the link is back, those it no
// longer holds, whose goodbyes were lost with the link). The other nodes
// then write the app's updates to the queue themselves.
func (r *Router) releaseApps(holding bool) {
	if r.shared == nil {
		return
	}
	for _, a := range r.allApps() {
		a.mu.Lock()
		if a.epoch > 0 && (holding || len(a.sinks) == 0) {
			r.announceChannels(a, false)
		}
		a.mu.Unlock()
	}
}

// recentSinceHoldersLocked is what the node kept since the app's holders
// were last heard from, less a heartbeat: what a holder that died may not
// have sent. Called with a.mu held.
func (r *Router) recentSinceHoldersLocked(a *appState) map[string]StatusUpdate {
	if len(a.recent) == 0 {
		return nil
	}
	var lastHeard time.Time
	r.live.mu.Lock()
	for node := range a.holders {
		if t := r.live.lastSeen[node]; t.After(lastHeard) {
			lastHeard = t
		}
	}
	r.live.mu.Unlock()
	from := lastHeard.Add(-r.opts.HeartbeatInterval)
	out := make(map[string]StatusUpdate)
	for puid, k := range a.recent {
		if !k.seen.Before(from) {
			out[puid] = k.StatusUpdate
		}
	}
	return out
}

// attachShared registers the sink as a channel of the app, after the
// cluster's queue when it is the node's first: see the file comment. It
// returns what the sink got from the queue.
func (r *Router) attachShared(ctx context.Context, a *appState, sink AppSink, opts AttachOptions) ([]StatusUpdate, error) {
	a.attachMu.Lock()
	defer a.attachMu.Unlock()
	a.mu.Lock()
	if len(a.sinks) > 0 { // the node's channels had every update already
		if opts.Initial {
			for _, u := range sortedUpdates(a.current) {
				sink.SendStatus(u)
			}
		}
		a.sinks[sink] = struct{}{}
		a.mu.Unlock()
		return nil, nil
	}
	a.taking = true
	a.held = make(map[string]StatusUpdate)
	kept := r.recentSinceHoldersLocked(a)
	a.recent = nil
	a.epoch++
	epoch := a.epoch
	r.announceChannels(a, true)
	a.mu.Unlock()

	oldest := r.opts.Now().Add(-r.opts.StatusQueueTTL)
	own := r.shared.fence(a.id)
	taken, err := r.takeShared(ctx, a.id, oldest)

	a.mu.Lock()
	defer a.mu.Unlock()
	a.taking = false
	held := a.held
	a.held = nil
	if err != nil {
		r.log.Warn("status queue: an app channel could not take the app's queue; refusing it", "app", a.id, "err", err)
		r.announceChannels(a, false)
		for _, m := range []map[string]StatusUpdate{own, kept, held} {
			for _, u := range m {
				r.parkShared(a, u)
			}
		}
		return nil, &Error{Errno: ErrnoShuttingDown, Reason: "the cluster's status queue did not answer", Err: err}
	}
	queue := make(map[string]StatusUpdate, len(taken)+len(own)+len(kept))
	for _, u := range taken {
		queue[u.PUID] = u
	}
	for _, m := range []map[string]StatusUpdate{own, kept} {
		for puid, u := range m {
			if w, ok := queue[puid]; !ok || !u.At.Before(w.At) {
				queue[puid] = u
			}
		}
	}
	maps.DeleteFunc(queue, func(puid string, u StatusUpdate) bool {
		_, live := held[puid]
		return live || u.At.Before(oldest)
	})
	if opts.Initial {
		for _, u := range sortedUpdates(a.current) {
			sink.SendStatus(u)
		}
	}
	var sent []StatusUpdate
	for _, m := range []map[string]StatusUpdate{queue, held} {
		for _, u := range sortedUpdates(m) {
			sink.SendStatus(u)
			sent = append(sent, u)
		}
	}
	a.sinks[sink] = struct{}{}
	time.AfterFunc(r.sweepAfter(), func() { r.sweepShared(a, epoch) })
	return sent, nil
}

// sharedTakeWait bounds how long an attach tries to take the app's queue:
// JetStream may be electing a stream leader (a server lost, or the
// cluster coming back), which takes seconds.
const sharedTakeWait = 15 * time.Second

// takeShared takes the app's queue, trying again while JetStream does
// not answer, for at most sharedTakeWait.
func (r *Router) takeShared(ctx context.Context, app AppID, since time.Time) ([]StatusUpdate, error) {
	ctx, cancel := context.WithTimeout(ctx, sharedTakeWait)
	defer cancel()
	backoff := 50 * time.Millisecond
	for {
		taken, err := r.shared.q.TakeWaiting(ctx, app, since)
		if err == nil || ctx.Err() != nil {
			return taken, err
		}
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, time.Second)
	}
}

// detachedLocked is called, with a.mu held, once a sink was removed.
func (r *Router) detachedLocked(a *appState) {
	if r.shared != nil && len(a.sinks) == 0 {
		r.announceChannels(a, false)
	}
}

// sweepShared deletes what nodes wrote to the app's queue after the take
// of attach epoch, if this node still holds the app since then: they
// wrote before they heard that it does, and it sent those updates live.
// No write of this node is in flight meanwhile, nor starts.
func (r *Router) sweepShared(a *appState, epoch uint64) {
	if r.shuttingDown.Load() {
		return
	}
	r.shared.flushMu.Lock()
	defer r.shared.flushMu.Unlock()
	a.mu.Lock()
	still := a.epoch == epoch && len(a.sinks) > 0
	a.mu.Unlock()
	if !still {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), sharedWriteTimeout)
	defer cancel()
	if err := r.shared.q.DropWaiting(ctx, a.id); err != nil {
		r.log.Warn("status queue: could not sweep what nodes wrote while this node took the app's queue", "app", a.id, "err", err)
	}
}

// requeueShared gives back what a channel had not written when it ended
// (Requeue): to the outbox, unless some node still holds the app.
func (r *Router) requeueShared(a *appState, updates []StatusUpdate) {
	if len(a.sinks) > 0 || len(a.holders) > 0 || a.taking {
		return
	}
	for _, u := range updates {
		r.shared.park(a.id, u)
	}
}

// sharedWriteTimeout bounds one write or sweep of the shared queue.
const sharedWriteTimeout = 10 * time.Second

// runSharedWriter writes the outbox to the shared queue until Shutdown,
// which writes what is left. Its first write waits sweepAfter: a
// starting node first hears which apps other nodes hold.
func (r *Router) runSharedWriter() {
	s := r.shared
	defer close(s.done)
	select {
	case <-s.stop:
		return
	case <-time.After(r.sweepAfter()):
	}
	backoff := 50 * time.Millisecond
	for {
		select {
		case <-s.stop:
			return
		case <-s.kick:
		}
		if r.flushShared() {
			backoff = 50 * time.Millisecond
			continue
		}
		select { // failed: the entries are back in the outbox
		case <-s.stop:
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 2*time.Second)
		select {
		case s.kick <- struct{}{}:
		default:
		}
	}
}

// flushShared writes the outbox, app by app, skipping apps that some
// node holds now. A failed write puts its entries back, behind any newer
// one of their PUID. It reports whether everything was written.
func (r *Router) flushShared() bool {
	s := r.shared
	s.flushMu.Lock()
	defer s.flushMu.Unlock()
	s.mu.Lock()
	batch := s.pending
	s.pending = make(map[AppID]map[string]StatusUpdate)
	s.mu.Unlock()
	ok := true
	for app, m := range batch {
		a := r.appState(app)
		a.mu.Lock()
		held := len(a.sinks) > 0 || len(a.holders) > 0 || a.taking
		a.mu.Unlock()
		if held {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), sharedWriteTimeout)
		err := s.q.PutWaiting(ctx, app, sortedUpdates(m))
		cancel()
		if err != nil {
			ok = false
			r.log.Warn("status queue: write failed; trying again", "app", app, "updates", len(m), "err", err)
			s.mu.Lock()
			cur := s.pending[app]
			if cur == nil {
				cur = make(map[string]StatusUpdate, len(m))
				s.pending[app] = cur
			}
			for puid, u := range m {
				if _, newer := cur[puid]; !newer {
					cur[puid] = u
				}
			}
			s.mu.Unlock()
		}
	}
	return ok
}

// stopShared ends the writer, if Start began it, and writes what is left.
func (r *Router) stopShared() error {
	close(r.shared.stop)
	if r.shared.started.Load() {
		<-r.shared.done
	}
	if !r.flushShared() {
		return errors.New("status updates waiting for apps could not be written to the cluster's queue")
	}
	return nil
}
