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
// last detached; again for a node that asks, one that starts or whose
// link came back), and node liveness ends what a dead node held.
//
//   - No node holds a channel of the app: each node parks the update in
//     its outbox (newest per PUID) and its writer puts it in the shared
//     queue. Every node writes what it computed, in the order it computed
//     it, so the queue ends on the status that every node ends on, and an
//     update survives the node that routed it. An outbox entry of an app
//     that another node holds by the time of the write is dropped: the
//     holder computed it too.
//   - Only other nodes hold one: the node keeps the update a while
//     (recent, recentKeep) in case they die holding it: an app channel
//     attaching here meanwhile gets what arrived since the holders were
//     last heard from, and when liveness forgets the last holder the
//     node writes what it kept.
//   - The first channel of the app on this node takes the queue: it says
//     Held on the Bus, waits for its own write in flight, takes (reads,
//     then deletes) the app's queue, and with what it kept and its own
//     unwritten outbox entries has the PUIDs whose status changed while
//     no channel listened (those within apps.status_queue_ttl). It sends
//     the channel each one's status as this node knows it now (its
//     current map, or offline), not the stored one: a node that had not
//     yet heard the Held may have written an older step after the take,
//     and the next take then repeats a PUID's status, never goes back to
//     an older one. PUIDs routed here since it said Held are sent after,
//     live, and not from the queue. When the node's last channel of the
//     app leaves, it deletes such late writes before it says so
//     (releaseAfterSweep), so that the next channel does not get them
//     again.
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
	q          SharedStatusQueue
	flushMu    sync.Mutex // held while a write is in flight, so that a take can wait for it
	mu         sync.Mutex // guards: pending
	pending    map[AppID]map[string]StatusUpdate
	kick       chan struct{} // a write is due
	started    atomic.Bool   // Start began the writer
	quietUntil atomic.Int64  // Unix nanoseconds: no write before (askHolders)
	stop       chan struct{}
	done       chan struct{}
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

// askQuiet is how long a node that asked which apps are held waits for
// the answers before it writes: longer than a Bus round trip.
func (r *Router) askQuiet() time.Duration { return 2 * r.opts.HeartbeatInterval }

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
	if c.Ask {
		r.announceHeldApps()
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

// askHolders asks every node which apps it holds channels of, and keeps
// this node from writing until the answers are in (a node that starts,
// or whose link came back: it may have missed what nodes said).
func (r *Router) askHolders() {
	if r.shared == nil {
		return
	}
	r.shared.quietUntil.Store(time.Now().Add(r.askQuiet()).UnixNano())
	r.bus.PublishAppChannels(AppChannels{Node: r.nodeID, Ask: true})
}

// announceHeldApps says Held again for every app this node holds
// channels of, is taking the queue of, or is sweeping before it lets go
// (a node asked).
func (r *Router) announceHeldApps() {
	if r.shared == nil {
		return
	}
	for _, a := range r.allApps() {
		a.mu.Lock()
		if len(a.sinks) > 0 || a.taking || a.sweeps > 0 {
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
		if a.everHeld && (holding || len(a.sinks) == 0 && a.sweeps == 0) {
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
	a.everHeld = true
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
	// The PUIDs that changed while no channel listened, each at the
	// latest time it did.
	changed := make(map[string]time.Time, len(taken)+len(own)+len(kept))
	note := func(u StatusUpdate) {
		if _, live := held[u.PUID]; !live && !u.At.Before(oldest) && u.At.After(changed[u.PUID]) {
			changed[u.PUID] = u.At
		}
	}
	for _, u := range taken {
		note(u)
	}
	for _, m := range []map[string]StatusUpdate{own, kept} {
		for _, u := range m {
			note(u)
		}
	}
	queue := make(map[string]StatusUpdate, len(changed))
	for puid, at := range changed {
		if u, ok := a.current[puid]; ok {
			queue[puid] = u
		} else {
			queue[puid] = StatusUpdate{PUID: puid, Status: Offline, At: at}
		}
	}
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
// When it was the node's last channel of the app, the node sweeps the
// app's queue before it says it holds none: see releaseAfterSweep.
func (r *Router) detachedLocked(a *appState) {
	if r.shared == nil || len(a.sinks) > 0 || r.shuttingDown.Load() {
		return // Shutdown has said it for every app
	}
	if r.linkLost.Load() {
		return // nothing reaches NATS: LinkRestored says it (releaseApps)
	}
	a.sweeps++
	go r.releaseAfterSweep(a)
}

// releaseAfterSweep deletes what waits in the app's queue, then says
// that this node holds no channel of it (unless one attached meanwhile).
// While the node held the app, only nodes that had not yet heard so
// wrote there: steps the node computed and sent itself, which the next
// channel would get again. Every other node still takes the app for held
// until it hears the release, so none writes there meanwhile, and this
// node's own writes of the app wait for the sweep (flushShared puts
// them back while it runs): what it routes from the detach on is written
// after it.
func (r *Router) releaseAfterSweep(a *appState) {
	r.shared.flushMu.Lock()
	defer r.shared.flushMu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), sharedWriteTimeout)
	defer cancel()
	if err := r.shared.q.DropWaiting(ctx, a.id); err != nil {
		r.log.Warn("status queue: could not sweep the app's queue as its last channel here left; its next channel may get some statuses again", "app", a.id, "err", err)
	}
	a.mu.Lock()
	a.sweeps--
	if a.sweeps == 0 && len(a.sinks) == 0 && !a.taking && !r.shuttingDown.Load() {
		r.announceChannels(a, false)
	}
	a.mu.Unlock()
	select { // what the node routed since the detach waits to be written
	case r.shared.kick <- struct{}{}:
	default:
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

// sharedWriteTimeout bounds one write to the shared queue.
const sharedWriteTimeout = 10 * time.Second

// runSharedWriter writes the outbox to the shared queue until Shutdown,
// which writes what is left. It does not write while the node waits for
// the answers to askHolders.
func (r *Router) runSharedWriter() {
	s := r.shared
	defer close(s.done)
	backoff := 50 * time.Millisecond
	for {
		select {
		case <-s.stop:
			return
		case <-s.kick:
		}
		if wait := time.Until(time.Unix(0, s.quietUntil.Load())); wait > 0 {
			select {
			case <-s.stop:
				return
			case <-time.After(wait):
			}
		}
		if r.flushShared(false) {
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

// flushShared writes the outbox, app by app, skipping apps that other
// nodes hold now and keeping back, unless final (Shutdown's last write),
// those this node is sweeping. A failed write puts its entries back, behind any newer
// one of their PUID. It reports whether everything was written.
func (r *Router) flushShared(final bool) bool {
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
		elsewhere, sweeping := len(a.holders) > 0, a.sweeps > 0
		a.mu.Unlock()
		if elsewhere {
			continue // the holders computed them too
		}
		if sweeping && !final {
			s.putBack(app, m) // routed since the detach: written after the sweep (releaseAfterSweep)
			continue
		}
		// Held here: a first channel taking the queue waits for this
		// write (fence), and takes it.
		ctx, cancel := context.WithTimeout(context.Background(), sharedWriteTimeout)
		err := s.q.PutWaiting(ctx, app, sortedUpdates(m))
		cancel()
		if err != nil {
			ok = false
			r.Metrics.StatusQueueFailures.Add(1)
			r.log.Warn("status queue: write failed; trying again", "app", app, "updates", len(m), "err", err)
			s.putBack(app, m)
		}
	}
	return ok
}

// putBack returns entries to the outbox, behind any newer one of their
// PUID.
func (s *sharedQueue) putBack(app AppID, m map[string]StatusUpdate) {
	s.mu.Lock()
	defer s.mu.Unlock()
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
}

// stopShared ends the writer, if Start began it, and writes what is left.
func (r *Router) stopShared() error {
	close(r.shared.stop)
	if r.shared.started.Load() {
		<-r.shared.done
	}
	if !r.flushShared(true) {
		return errors.New("status updates waiting for apps could not be written to the cluster's queue")
	}
	return nil
}
