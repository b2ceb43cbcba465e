package core

import (
	"context"
	"hash/fnv"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// Options are the router's settings, from presence.toml.
type Options struct {
	DisconnectGrace        time.Duration    // device.disconnect_grace
	StatusQueueTTL         time.Duration    // apps.status_queue_ttl
	NotificationDefaultTTL time.Duration    // notifications.default_ttl
	NotificationQueueSize  int              // notifications.queue_size
	NotificationsPerMinute int              // limits.notifications_per_minute, per app
	NotificationWindow     int              // notifications.window: pushed and unacked, per session
	HeartbeatInterval      time.Duration    // between this node's heartbeats on the Bus; 0: 2s (liveness.go)
	Keys                   *Keyring         // seals API keys; required to activate apps
	Now                    func() time.Time // nil: time.Now
	Logger                 *slog.Logger     // nil: slog.Default()
}

// Router owns all live state: device sessions by (user, device_id), the
// status each app was last told per user, and the channels of each app.
// Edges call its methods; it calls back through DeviceSink and AppSink,
// which never block. Maps are sharded so that no global lock sits on the
// hot path.
type Router struct {
	reg      Registry
	queues   NotificationQueues
	statuses StatusQueue
	shared   *sharedQueue // a cluster's StatusQueue (sharedqueue.go); nil on one node
	bus      Bus
	opts     Options
	log      *slog.Logger
	Metrics  *Metrics

	users [shardCount]userShard
	apps  [shardCount]appShard

	cache      appCache
	grants     grantCache
	puidGrants *PUIDGrants // nil on one node

	notifyLimits sync.Map // AppID → *RateLimiter, one bucket per app for every edge
	keyGuard     KeyGuard // failed API-key checks, for every edge (keyguard.go)
	pending      pendingUsers

	nodeID string       // this router's id among the nodes of the Bus
	view   presenceView // every user's status across the nodes (presenceview.go)
	live   liveness     // the other nodes' heartbeats (liveness.go)

	shuttingDown atomic.Bool
	linkLost     atomic.Bool // LinkLost until LinkRestored (linkloss.go)
	unsubscribe  func()      // from the bus, at Shutdown
}

const shardCount = 64

type userShard struct {
	mu sync.Mutex // guards: m
	m  map[string]*userState
}

type appShard struct {
	mu sync.Mutex // guards: m
	m  map[AppID]*appState
}

// Deps are the services a router is built on. Registry, Notifications
// and Statuses are required (core/sqlite's DB is all three on one node);
// a nil Bus is a LocalBus of this process alone.
type Deps struct {
	Registry      Registry
	Notifications NotificationQueues
	Statuses      StatusQueue
	Bus           Bus
	// PUIDGrants, if set, is the lookup the notification queues check
	// PUIDs with (a cluster's); the router tells it of revocations.
	PUIDGrants *PUIDGrants
}

// NewRouter returns a router over deps. Call Start before use.
func NewRouter(deps Deps, opts Options) *Router {
	if deps.Registry == nil || deps.Notifications == nil || deps.Statuses == nil {
		panic("core.NewRouter: Registry, Notifications and Statuses are required")
	}
	if deps.Bus == nil {
		deps.Bus = NewLocalBus()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.StatusQueueTTL <= 0 {
		opts.StatusQueueTTL = time.Hour
	}
	if opts.NotificationDefaultTTL <= 0 {
		opts.NotificationDefaultTTL = time.Minute
	}
	if opts.NotificationQueueSize <= 0 {
		opts.NotificationQueueSize = 100
	}
	if opts.NotificationsPerMinute <= 0 {
		opts.NotificationsPerMinute = 6000
	}
	if opts.HeartbeatInterval <= 0 {
		opts.HeartbeatInterval = 2 * time.Second
	}
	if opts.NotificationWindow <= 0 {
		opts.NotificationWindow = 100
	}
	r := &Router{reg: deps.Registry, queues: deps.Notifications, statuses: deps.Statuses, bus: deps.Bus,
		puidGrants: deps.PUIDGrants, opts: opts, log: opts.Logger, Metrics: NewMetrics()}
	for i := range r.users {
		r.users[i].m = make(map[string]*userState)
	}
	for i := range r.apps {
		r.apps[i].m = make(map[AppID]*appState)
	}
	if q, ok := deps.Statuses.(SharedStatusQueue); ok {
		r.shared = newSharedQueue(q)
	}
	r.cache.m = make(map[AppID]cachedApp)
	r.grants.init()
	r.view.init()
	r.live.init()
	r.nodeID = NewSessionID()
	r.pending.init()
	r.unsubscribe = r.bus.Subscribe(busSubscriber{r})
	return r
}

// Now is the router's clock.
func (r *Router) Now() time.Time { return r.opts.Now() }

// Options returns the router's settings.
func (r *Router) Options() Options { return r.opts }

// Start loads the status updates that were waiting for apps when the
// server last stopped. On one node they then live in memory until an app
// takes them or the server stops again (Shutdown writes them back); a
// cluster's stay in its shared queue (sharedqueue.go).
func (r *Router) Start(ctx context.Context) error {
	if err := r.loadPending(ctx); err != nil {
		return err
	}
	go r.runLiveness()
	r.bus.RequestPresences(r.nodeID) // presencesync.go
	if r.shared != nil {
		r.askHolders() // sharedqueue.go
		r.shared.started.Store(true)
		go r.runSharedWriter()
		return nil
	}
	since := r.opts.Now().Add(-r.opts.StatusQueueTTL)
	all, err := r.statuses.AllWaiting(ctx, since)
	if err != nil {
		return err
	}
	for app, updates := range all {
		a := r.appState(app)
		a.mu.Lock()
		for _, u := range updates {
			a.waiting[u.PUID] = u
			if u.Status != Offline {
				a.current[u.PUID] = u
			}
		}
		a.mu.Unlock()
		if _, err := r.statuses.TakeWaiting(ctx, app, since); err != nil {
			return err
		}
	}
	return nil
}

// Shutdown tells every device errno -4 and writes the waiting status
// queues to the store (a cluster: what its outbox holds), so that
// nothing an app has not yet seen is lost.
// Apps are not told offline: a restart is a hand-over, and devices
// connect again (to this node or another).
func (r *Router) Shutdown(ctx context.Context) error {
	r.shuttingDown.Store(true)
	for _, u := range r.allUsers() {
		u.mu.Lock()
		for _, s := range u.sessions {
			if s.graceTimer != nil {
				s.graceTimer.Stop()
			}
			if !s.gone {
				s.sink.Close(ErrnoShuttingDown)
			}
		}
		u.mu.Unlock()
	}
	r.stopLiveness()
	r.releaseApps(true) // sharedqueue.go: the others queue what this node no longer hears
	r.unsubscribe()     // what the node has not yet saved stops growing
	if r.shared != nil {
		return r.stopShared()
	}
	var firstErr error
	for _, a := range r.allApps() {
		a.mu.Lock()
		updates := make([]StatusUpdate, 0, len(a.waiting))
		for _, u := range a.waiting {
			updates = append(updates, u)
		}
		a.mu.Unlock()
		if len(updates) == 0 {
			continue
		}
		if err := r.statuses.SaveWaiting(ctx, a.id, updates); err != nil && firstErr == nil {
			firstErr = err
		}
	}
	return firstErr
}

// allUsers is a snapshot of the live users, one shard locked at a time.
func (r *Router) allUsers() []*userState {
	var out []*userState
	for i := range r.users {
		sh := &r.users[i]
		sh.mu.Lock()
		for _, u := range sh.m {
			out = append(out, u)
		}
		sh.mu.Unlock()
	}
	return out
}

// allApps is a snapshot of the apps the router has seen.
func (r *Router) allApps() []*appState {
	var out []*appState
	for i := range r.apps {
		sh := &r.apps[i]
		sh.mu.Lock()
		for _, a := range sh.m {
			out = append(out, a)
		}
		sh.mu.Unlock()
	}
	return out
}

// ShuttingDown reports whether Shutdown has begun; edges refuse new work.
func (r *Router) ShuttingDown() bool { return r.shuttingDown.Load() }

func shardOf(s string) uint32 {
	h := fnv.New32a()
	h.Write([]byte(s))
	return h.Sum32() % shardCount
}

// lockUser returns the user's state, locked, creating it when create is
// set; nil when absent and not created.
func (r *Router) lockUser(id string, create bool) *userState {
	sh := &r.users[shardOf(id)]
	for {
		sh.mu.Lock()
		u := sh.m[id]
		if u == nil {
			if !create {
				sh.mu.Unlock()
				return nil
			}
			u = &userState{id: id, sessions: make(map[string]*Session), shown: make(map[AppID]Presence)}
			sh.m[id] = u
		}
		sh.mu.Unlock()
		u.mu.Lock()
		if !u.dead {
			return u
		}
		u.mu.Unlock() // removed between the two locks: look again
	}
}

// dropUserIfIdleLocked forgets a user with no session and nothing shown.
func (r *Router) dropUserIfIdleLocked(u *userState) {
	if len(u.sessions) > 0 || len(u.shown) > 0 {
		return
	}
	sh := &r.users[shardOf(u.id)]
	sh.mu.Lock()
	if sh.m[u.id] == u {
		delete(sh.m, u.id)
	}
	sh.mu.Unlock()
	u.dead = true
}

func (r *Router) appState(id AppID) *appState {
	sh := &r.apps[uint64(id)%shardCount]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	a := sh.m[id]
	if a == nil {
		a = &appState{id: id, sinks: make(map[AppSink]struct{}), current: make(map[string]StatusUpdate), waiting: make(map[string]StatusUpdate)}
		sh.m[id] = a
	}
	return a
}

// Stats are counts of what is live now.
type Stats struct {
	Users       int
	Devices     int
	AppChannels int
}

// Stats counts live users, device sessions and app channels.
func (r *Router) Stats() Stats {
	var st Stats
	for i := range r.users {
		sh := &r.users[i]
		sh.mu.Lock()
		st.Users += len(sh.m)
		sh.mu.Unlock()
	}
	st.Devices = int(r.Metrics.DevicesConnected.Load())
	for _, a := range r.allApps() {
		a.mu.Lock()
		st.AppChannels += len(a.sinks)
		a.mu.Unlock()
	}
	return st
}

// NotifyLimiter is the app's notification bucket
// (limits.notifications_per_minute), shared by the HTTP endpoint and the
// XMPP listener so that an app cannot double its rate by using both.
func (r *Router) NotifyLimiter(id AppID) *RateLimiter {
	if l, ok := r.notifyLimits.Load(id); ok {
		return l.(*RateLimiter)
	}
	l, _ := r.notifyLimits.LoadOrStore(id, NewRateLimiter(r.opts.NotificationsPerMinute, r.opts.Now()))
	return l.(*RateLimiter)
}
