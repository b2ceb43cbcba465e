package core

import (
	"context"
	"slices"
	"sync"
	"time"
)

// DeviceSink is how the router reaches a device's connection. Both methods
// must return at once: the edge queues, its writer sends.
type DeviceSink interface {
	// SendNotifications queues live notifications for the device.
	SendNotifications(ns []Notification)
	// Close ends the session with a (negative) errno, e.g. -2 when a newer
	// connection of the same user and device replaces it.
	Close(errno Errno)
}

// Session is one device's connection, from connect to disconnect.
type Session struct {
	id        string
	user      *userState
	identity  Identity
	deviceID  string
	sink      DeviceSink
	createdAt time.Time

	// guarded by user.mu:
	apps       map[AppID]devicePresence // what this device shows each app
	current    Presence                 // its last status for all apps
	currentAt  time.Time
	gone       bool        // socket ended; waiting out the grace
	replaced   bool        // a newer session took over; it owns the presence now
	statusSet  bool        // the device set a status itself: a handover no longer applies
	graceTimer *time.Timer // runs while gone
	flow       flowState   // notifications pushed and not yet acked (flow.go)

	fillMu sync.Mutex // held by the one fill of this session's window at a time (flow.go)
}

type devicePresence struct {
	Presence
	at time.Time
}

// ID is the session_id the device must quote.
func (s *Session) ID() string { return s.id }

// Identity is who the device's assertion vouched for.
func (s *Session) Identity() Identity { return s.identity }

// DeviceID is the device's id within its user.
func (s *Session) DeviceID() string { return s.deviceID }

// CreatedAt is when the session connected (device.max_session counts from it).
func (s *Session) CreatedAt() time.Time { return s.createdAt }

// userState is one user's live devices and what each app was last told.
//
// Never wait for a store write while holding mu: every device request
// and every push of the user queues behind it, and a write's commit may
// wait for other writers' syncs. Reads (lockWithGrants' fallback) may.
type userState struct {
	mu       sync.Mutex // guards every field below, and the guarded fields of its sessions
	id       string
	sessions map[string]*Session // by device id, including ones in their grace
	puids    map[AppID][]string  // the user's grants; shared with the grant cache, so replaced, never written
	shown    map[AppID]Presence  // what each app was last told, non-offline only
	dead     bool                // removed from its shard; look it up again
}

// MaxDeviceIDLength bounds device_id (PROTOCOL §2).
const MaxDeviceIDLength = 64

// ValidDeviceID reports whether id is 1–64 of [A-Za-z0-9._-].
func ValidDeviceID(id string) bool {
	if id == "" || len(id) > MaxDeviceIDLength {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// ConnectRequest is a device's connect, after its assertion was verified.
type ConnectRequest struct {
	Identity Identity
	DeviceID string
	AppIDs   []AppID
	Sink     DeviceSink
}

// Connect opens a session for (user, device). An older session of the same
// pair is closed with errno -2 (or, if it was in its disconnect grace,
// quietly taken over); the new one inherits what it showed, so a network
// hand-over does not flap. It returns the requested ids that are unknown,
// inactive or not granted by this user.
func (r *Router) Connect(ctx context.Context, req ConnectRequest) (*Session, []AppID, error) {
	defer r.Metrics.ConnectSeconds.ObserveSince(time.Now())
	if r.refusing() {
		return nil, nil, &Error{Errno: ErrnoShuttingDown}
	}
	if !ValidDeviceID(req.DeviceID) {
		return nil, nil, Errorf(ErrnoInvalidField, "device_id: want 1 to 64 of A-Z a-z 0-9 . _ -")
	}
	u, g, err := r.lockWithGrants(ctx, req.Identity.Subject, req.AppIDs, func() *userState {
		return r.lockUser(req.Identity.Subject, true)
	})
	if err != nil {
		return nil, nil, err
	}
	// The other nodes hear of the session after the user's lock is let
	// go: on a LocalBus they answer on this goroutine (devicehandover.go).
	var announce *DeviceEvent
	defer func() {
		if announce != nil {
			r.bus.PublishDevice(*announce)
		}
	}()
	defer u.mu.Unlock()
	if r.linkLost.Load() { // lost while the grants were read: LinkLost may have swept this user already
		return nil, nil, &Error{Errno: ErrnoShuttingDown}
	}
	visible, ignored := g.visible, g.ignored
	now := r.opts.Now()
	s := &Session{
		id:        NewSessionID(),
		user:      u,
		identity:  req.Identity,
		deviceID:  req.DeviceID,
		sink:      req.Sink,
		createdAt: now,
		apps:      make(map[AppID]devicePresence, len(visible)),
	}
	u.puids = g.byApp
	touched := slices.Clone(visible)
	if old := u.sessions[req.DeviceID]; old != nil {
		s.current, s.currentAt = old.current, old.currentAt
		for app, p := range old.apps {
			if slices.Contains(visible, app) {
				s.apps[app] = p
			}
			touched = append(touched, app)
		}
		old.replaced = true
		if old.graceTimer != nil {
			old.graceTimer.Stop()
		}
		if !old.gone { // a gone session was counted out at its Disconnect
			old.sink.Close(ErrnoReplaced)
			r.Metrics.DevicesConnected.Add(-1)
		}
	}
	for _, app := range visible {
		if _, ok := s.apps[app]; !ok {
			s.apps[app] = devicePresence{Presence: Presence{Status: Offline}, at: now}
		}
	}
	u.sessions[req.DeviceID] = s
	r.Metrics.DevicesConnected.Add(1)
	r.Metrics.Connects.Add(1)
	for _, app := range uniqueApps(touched) {
		r.recomputeLocked(u, app, now)
	}
	announce = &DeviceEvent{Kind: DeviceConnected, Node: r.nodeID, User: u.id, DeviceID: req.DeviceID, SessionID: s.id, At: now}
	return s, ignored, nil
}

// SetStatus records what the device shows: to every app of the session,
// or only to apps (those of the session) for this one call.
func (r *Router) SetStatus(s *Session, p Presence, apps []AppID) error {
	defer r.Metrics.RouteSeconds.ObserveSince(time.Now())
	if err := CheckMessage(p.Message); err != nil {
		return err
	}
	u := s.user
	u.mu.Lock()
	defer u.mu.Unlock()
	if s.replaced || s.gone {
		return &Error{Errno: ErrnoUnknownSession}
	}
	now := r.opts.Now()
	s.statusSet = true
	r.Metrics.StatusUpdates.Add(1)
	if apps == nil {
		s.current, s.currentAt = p, now
		for app := range s.apps {
			s.apps[app] = devicePresence{p, now}
			r.recomputeLocked(u, app, now)
		}
		return nil
	}
	for _, app := range uniqueApps(apps) {
		if _, ok := s.apps[app]; ok {
			s.apps[app] = devicePresence{p, now}
			r.recomputeLocked(u, app, now)
		}
	}
	return nil
}

// SetVisibility replaces the session's app set: apps taken out are told
// offline (unless another device still shows them the user), apps added
// are told the device's current status. It returns the ids ignored.
func (r *Router) SetVisibility(ctx context.Context, s *Session, apps []AppID) ([]AppID, error) {
	u, g, err := r.lockWithGrants(ctx, s.identity.Subject, apps, func() *userState {
		s.user.mu.Lock()
		return s.user
	})
	if err != nil {
		return nil, err
	}
	defer u.mu.Unlock()
	if s.replaced || s.gone {
		return nil, &Error{Errno: ErrnoUnknownSession}
	}
	visible, ignored := g.visible, g.ignored
	u.puids = g.byApp
	now := r.opts.Now()
	var touched []AppID
	for app := range s.apps {
		if !slices.Contains(visible, app) {
			delete(s.apps, app)
			touched = append(touched, app)
		}
	}
	for _, app := range visible {
		if _, ok := s.apps[app]; !ok {
			s.apps[app] = devicePresence{s.current, now}
			touched = append(touched, app)
		}
	}
	for _, app := range touched {
		r.recomputeLocked(u, app, now)
	}
	return ignored, nil
}

// Disconnect is called by the edge when the device's socket has ended.
// If the device still showed a status, apps are told offline only after
// the disconnect grace, unless the same (user, device) connects again.
func (r *Router) Disconnect(s *Session) {
	u := s.user
	u.mu.Lock()
	defer u.mu.Unlock()
	if s.replaced || s.gone {
		return
	}
	s.gone = true
	r.Metrics.DevicesConnected.Add(-1)
	showing := false
	for _, p := range s.apps {
		if p.Status != Offline {
			showing = true
			break
		}
	}
	if r.shuttingDown.Load() {
		// A restart is a hand-over: apps keep what they were told, and
		// the device connects again (here or to another node).
		delete(u.sessions, s.deviceID)
		s.replaced = true
		return
	}
	if !showing || r.opts.DisconnectGrace <= 0 {
		r.removeSessionLocked(s)
		return
	}
	s.graceTimer = time.AfterFunc(r.opts.DisconnectGrace, func() {
		u.mu.Lock()
		defer u.mu.Unlock()
		if s.gone && !s.replaced && u.sessions[s.deviceID] == s {
			r.removeSessionLocked(s)
		}
	})
}

func (r *Router) removeSessionLocked(s *Session) {
	u := s.user
	if u.sessions[s.deviceID] == s {
		delete(u.sessions, s.deviceID)
	}
	s.replaced = true // nothing may touch it again
	now := r.opts.Now()
	for app := range s.apps {
		r.recomputeLocked(u, app, now)
	}
	r.dropUserIfIdleLocked(u)
}

// aggregateLocked is the user's status for app: the best of the devices
// that show it to app; between equals, the most recent (its message wins).
func aggregateLocked(u *userState, app AppID) Presence {
	p, _ := aggregateWithTimeLocked(u, app)
	return p
}

// aggregateWithTimeLocked is aggregateLocked with the time of the device
// status it chose.
func aggregateWithTimeLocked(u *userState, app AppID) (Presence, time.Time) {
	best := Presence{Status: Offline}
	var bestAt time.Time
	found := false
	for _, s := range u.sessions {
		p, ok := s.apps[app]
		if !ok {
			continue
		}
		if !found || p.Status > best.Status || (p.Status == best.Status && p.at.After(bestAt)) {
			best, bestAt, found = p.Presence, p.at, true
		}
	}
	if best.Status == Offline {
		return Presence{Status: Offline}, bestAt // an offline user carries no message
	}
	return best, bestAt
}

// recomputeLocked tells every node, if it changed, what this node's
// devices of the user show app; each node combines it with the other
// nodes' (presenceview.go) and tells its channels of app.
func (r *Router) recomputeLocked(u *userState, app AppID, now time.Time) {
	next := aggregateLocked(u, app)
	prev, shown := u.shown[app]
	if !shown {
		prev = Presence{Status: Offline}
	}
	if prev == next {
		return
	}
	if next.Status == Offline {
		delete(u.shown, app)
	} else {
		u.shown[app] = next
	}
	r.bus.PublishPresence(NodePresence{Node: r.nodeID, User: u.id, App: app, PUIDs: u.puids[app], Presence: next, At: now})
}

// filterApps splits ids into those the device may show (known, active,
// granted by this user) and the rest. An app the registry cannot be asked
// about is an error, not an ignored id: the device would take "ignored"
// for the app's final word, and stay hidden from it until it connects
// again.
func (r *Router) filterApps(ctx context.Context, ids []AppID, grants map[AppID][]string) (visible, ignored []AppID, err error) {
	visible, ignored = []AppID{}, []AppID{}
	for _, id := range uniqueApps(ids) {
		a, err := r.App(ctx, id)
		if err != nil && ErrnoOf(err) != ErrnoUnknownUID {
			return nil, nil, err
		}
		if err != nil || !a.Active() || len(grants[id]) == 0 {
			ignored = append(ignored, id)
			continue
		}
		visible = append(visible, id)
	}
	return visible, ignored, nil
}

func uniqueApps(ids []AppID) []AppID {
	out := make([]AppID, 0, len(ids))
	for _, id := range ids {
		if !slices.Contains(out, id) {
			out = append(out, id)
		}
	}
	return out
}
