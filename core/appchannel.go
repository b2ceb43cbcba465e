package core

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"sync"
)

// AppSink is how the router reaches one channel of an app (a WebSocket or
// an XMPP component). Both methods must return at once.
type AppSink interface {
	// SendStatus queues an update; channels coalesce per PUID
	// (StatusOutbox does it for them).
	SendStatus(u StatusUpdate)
	// Close ends the channel: errno 41 when the app was deactivated, 40
	// when its key was rotated, -4 when the server stops.
	Close(errno Errno)
}

// appState is one app's live side: its channels, the status of each of its
// PUIDs that is not offline, and the queue waiting while no channel is
// connected.
type appState struct {
	id      AppID
	mu      sync.Mutex // guards: sinks, current, waiting, holders, recent, taking, held, everHeld, sweeps
	sinks   map[AppSink]struct{}
	current map[string]StatusUpdate // non-offline PUIDs, for probes and XMPP's initial presence
	waiting map[string]StatusUpdate // one node: newest per PUID while no sink is attached

	// A cluster's shared queue (sharedqueue.go); unused on one node.
	attachMu sync.Mutex              // serializes this node's takes of the app's queue
	holders  map[string]struct{}     // other nodes holding channels of the app
	recent   map[string]recentUpdate // routed while only other nodes hold channels
	taking   bool                    // a first channel here is taking the queue
	held     map[string]StatusUpdate // routed while taking: sent after the queue
	everHeld bool                    // this node has said it holds channels of the app
	sweeps   int                     // releaseAfterSweep calls under way
}

// publish tells app an update, through the bus, on every node. Callers
// hold the user's lock, which keeps each PUID's updates in order.
func (r *Router) publish(app AppID, u StatusUpdate) {
	r.bus.PublishStatus(app, u)
}

// deliverStatus tells this node's channels of app an update, or keeps it
// in the waiting queue while the node holds none.
func (r *Router) deliverStatus(app AppID, u StatusUpdate) {
	a := r.appState(app)
	a.mu.Lock()
	defer a.mu.Unlock()
	if u.Status == Offline {
		delete(a.current, u.PUID)
	} else {
		a.current[u.PUID] = u
	}
	r.Metrics.UpdatesPublished.Add(1)
	if len(a.sinks) == 0 {
		if r.shared != nil {
			r.parkShared(a, u)
			return
		}
		a.waiting[u.PUID] = u
		return
	}
	for s := range a.sinks {
		s.SendStatus(u)
	}
}

// AttachOptions say what a new app channel gets before live updates.
type AttachOptions struct {
	// Initial sends the status of every PUID that is not offline first
	// (the XMPP component's initial presence).
	Initial bool
	// KeyHash is the hash of the key the channel authenticated with
	// (App.KeyHash as it read then). When set, AttachApp refuses the
	// channel if the app's key changed or the app stopped since: a key
	// rotation or deactivation that races with an attach either ends the
	// channel (it was registered in time) or is seen by this check.
	KeyHash []byte
}

// AttachApp registers a channel of an active app. Before any live update
// it gets, in order: with Initial, every PUID not offline; then the
// waiting queue (none older than apps.status_queue_ttl). detach must be
// called when the channel ends.
func (r *Router) AttachApp(ctx context.Context, id AppID, sink AppSink, opts AttachOptions) (detach func(), err error) {
	if r.refusing() {
		return nil, &Error{Errno: ErrnoShuttingDown}
	}
	app, err := r.App(ctx, id)
	if err != nil {
		return nil, err
	}
	if !app.Active() {
		return nil, &Error{Errno: ErrnoAppInactive}
	}
	a := r.appState(id)
	var fromQueue []StatusUpdate
	if r.shared != nil {
		if fromQueue, err = r.attachShared(ctx, a, sink, opts); err != nil {
			return nil, err
		}
	} else {
		fromQueue = r.attachLocal(a, sink, opts)
	}
	r.Metrics.AppChannels.Add(1)
	var once sync.Once
	detach = func() {
		once.Do(func() {
			a.mu.Lock()
			delete(a.sinks, sink)
			r.detachedLocked(a)
			a.mu.Unlock()
			r.Metrics.AppChannels.Add(-1)
		})
	}
	if r.linkLost.Load() { // lost while attaching: LinkLost may have swept the app already
		detach()
		r.Requeue(id, fromQueue)
		return nil, &Error{Errno: ErrnoShuttingDown}
	}
	if opts.KeyHash != nil {
		// Registered first, checked second: an invalidation forgets the
		// cached app before it ends the app's channels.
		now, err := r.App(ctx, id)
		if err == nil && !now.Active() {
			err = &Error{Errno: ErrnoAppInactive}
		} else if err == nil && !bytes.Equal(now.KeyHash, opts.KeyHash) {
			err = &Error{Errno: ErrnoBadKey, Reason: "the app's key was changed"}
		}
		if err != nil {
			detach()
			r.Requeue(id, fromQueue)
			return nil, err
		}
	}
	return detach, nil
}

// attachLocal registers the sink after the app's in-memory queue (one
// node), and returns what it got from it.
func (r *Router) attachLocal(a *appState, sink AppSink, opts AttachOptions) []StatusUpdate {
	a.mu.Lock()
	defer a.mu.Unlock()
	if opts.Initial {
		for _, u := range sortedUpdates(a.current) {
			sink.SendStatus(u)
		}
	}
	oldest := r.opts.Now().Add(-r.opts.StatusQueueTTL)
	var fromQueue []StatusUpdate
	for _, u := range sortedUpdates(a.waiting) {
		if !u.At.Before(oldest) {
			sink.SendStatus(u)
			fromQueue = append(fromQueue, u)
		}
	}
	clear(a.waiting)
	a.sinks[sink] = struct{}{}
	return fromQueue
}

// Requeue gives back updates that a channel had queued but not written
// when it ended (call it after detach). If no other channel of the app is
// connected, they wait for the next one, unless something newer for the
// same PUID waits already; otherwise the other channels had them too.
func (r *Router) Requeue(id AppID, updates []StatusUpdate) {
	if len(updates) == 0 {
		return
	}
	a := r.appState(id)
	a.mu.Lock()
	defer a.mu.Unlock()
	if r.shared != nil {
		r.requeueShared(a, updates)
		return
	}
	if len(a.sinks) > 0 {
		return
	}
	for _, u := range updates {
		if w, ok := a.waiting[u.PUID]; !ok || w.At.Before(u.At) {
			a.waiting[u.PUID] = u
		}
	}
}

// closeAppChannels ends every channel of app on this node with errno.
func (r *Router) closeAppChannels(id AppID, errno Errno) {
	a := r.appState(id)
	a.mu.Lock()
	sinks := make([]AppSink, 0, len(a.sinks))
	for s := range a.sinks {
		sinks = append(sinks, s)
	}
	a.mu.Unlock()
	for _, s := range sinks {
		s.Close(errno)
	}
}

// CloseAllApps ends every app channel with errno (at shutdown).
func (r *Router) CloseAllApps(errno Errno) {
	for _, a := range r.allApps() {
		r.closeAppChannels(a.id, errno)
	}
}

func sortedUpdates(m map[string]StatusUpdate) []StatusUpdate {
	out := make([]StatusUpdate, 0, len(m))
	for _, u := range m {
		out = append(out, u)
	}
	slices.SortFunc(out, func(a, b StatusUpdate) int {
		if c := a.At.Compare(b.At); c != 0 {
			return c
		}
		return compareStrings(a.PUID, b.PUID)
	})
	return out
}

func compareStrings(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// ProbeResult is the answer for one probed PUID.
type ProbeResult struct {
	StatusUpdate
	Known bool // false: not a grant of this app (or revoked)
}

// MaxProbe bounds the PUIDs of one probe.
const MaxProbe = 1000

// Probe returns the current status of each PUID for app, in order. PUIDs
// that are not grants of app are reported offline and not Known: an app
// never learns anything of another app's users.
func (r *Router) Probe(ctx context.Context, id AppID, puids []string) ([]ProbeResult, error) {
	if len(puids) > MaxProbe {
		return nil, Errorf(ErrnoInvalidField, "UIDs: at most %d", MaxProbe)
	}
	now := r.opts.Now()
	out := make([]ProbeResult, len(puids))
	a := r.appState(id)
	var unknown []int
	a.mu.Lock()
	for i, p := range puids {
		if u, ok := a.current[p]; ok {
			out[i] = ProbeResult{StatusUpdate: u, Known: true}
			out[i].At = now
		} else {
			unknown = append(unknown, i)
		}
	}
	a.mu.Unlock()
	for _, i := range unknown {
		p := puids[i]
		out[i] = ProbeResult{StatusUpdate: StatusUpdate{PUID: p, Status: Offline, At: now}}
		g, err := r.reg.GrantByPUID(ctx, p)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out[i].Known = g.AppID == id
	}
	return out, nil
}
