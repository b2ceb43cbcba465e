package core

import "time"

// One session per (user, device_id) across the cluster (PROTOCOL §10). A
// node that opens a session publishes DeviceConnected; a node holding an
// older session of the same pair ends it with errno -2 (quietly if it was
// in its disconnect grace) and hands what it showed over to the new one
// (DeviceHandover), so that apps see no offline between the two, as on
// one node. When two nodes connect the pair at once, both agree on the
// newer session by (connect time, session id): exactly one survives.

// DeviceEventKind says what a DeviceEvent tells.
type DeviceEventKind uint8

// The device events.
const (
	// DeviceConnected: Node opened SessionID for (User, DeviceID) at At.
	DeviceConnected DeviceEventKind = iota + 1
	// DeviceHandover: Node ended its session of (User, DeviceID) for the
	// newer SessionID; Apps and Current are what it showed.
	DeviceHandover
)

// DeviceEvent is a device session's news for the other nodes.
type DeviceEvent struct {
	Kind      DeviceEventKind
	Node      string // the publishing router's id
	To        string // DeviceHandover: the router id of the new session's node
	User      string
	DeviceID  string
	SessionID string
	At        time.Time
	Current   Presence           // DeviceHandover: the ended session's status for all apps
	Apps      map[AppID]Presence // DeviceHandover: what it showed each app
}

// newerThan reports whether session s is newer than the one of e, by the
// order every node agrees on.
func (s *Session) newerThan(e DeviceEvent) bool {
	if !s.createdAt.Equal(e.At) {
		return s.createdAt.After(e.At)
	}
	return s.id > e.SessionID
}

// deliverDevice applies another node's device event.
func (r *Router) deliverDevice(e DeviceEvent) {
	switch e.Kind {
	case DeviceConnected:
		if e.Node != r.nodeID { // this node's own: Connect did the local part
			r.endOlderSession(e)
		}
	case DeviceHandover:
		// Every node moves what the old node showed to the new one
		// before the old node's offline arrives (it follows the
		// handover, from the same publisher): no channel anywhere sees
		// an offline between the two sessions. The old node too, for its
		// own channels.
		r.view.handOver(e)
		if e.To == r.nodeID {
			r.takeHandover(e)
		}
	}
}

// endOlderSession ends this node's session of e's (user, device) if it is
// the older, hands what it showed over to the new one, and only then
// tells every node that this node no longer shows it: on every node the
// handover arrives before this node's offline (one publisher, one order),
// so apps see no offline between the two sessions.
func (r *Router) endOlderSession(e DeviceEvent) {
	u := r.lockUser(e.User, false)
	if u == nil {
		return
	}
	s := u.sessions[e.DeviceID]
	if s == nil || s.newerThan(e) { // ours stays: its node ends the other when it hears ours
		u.mu.Unlock()
		return
	}
	if s.graceTimer != nil {
		s.graceTimer.Stop()
	}
	if !s.gone { // a gone session was counted out at its Disconnect
		s.sink.Close(ErrnoReplaced)
		r.Metrics.DevicesConnected.Add(-1)
	}
	s.replaced = true
	delete(u.sessions, e.DeviceID)
	now := r.opts.Now()
	shown := make(map[AppID]Presence, len(s.apps))
	for app, p := range s.apps {
		shown[app] = p.Presence
	}
	u.mu.Unlock()
	// Published without the user's lock: on a LocalBus the new session's
	// node takes the handover on this goroutine.
	r.bus.PublishDevice(DeviceEvent{Kind: DeviceHandover, Node: r.nodeID, To: e.Node, User: e.User, DeviceID: e.DeviceID,
		SessionID: e.SessionID, At: now, Current: s.current, Apps: shown})
	if u = r.lockUser(e.User, false); u == nil {
		return
	}
	defer u.mu.Unlock()
	for app := range shown {
		r.recomputeLocked(u, app, now)
	}
	r.dropUserIfIdleLocked(u)
}

// takeHandover gives this node's new session what the ended one showed,
// unless the device has set a status itself since.
func (r *Router) takeHandover(e DeviceEvent) {
	u := r.lockUser(e.User, false)
	if u == nil {
		return
	}
	defer u.mu.Unlock()
	s := u.sessions[e.DeviceID]
	if s == nil || s.id != e.SessionID || s.replaced {
		return // not the session it was meant for
	}
	now := r.opts.Now()
	if s.statusSet {
		// The device spoke first: what it said stands. Say it again, so
		// that every node replaces what the handover moved in its view.
		for app := range s.apps {
			r.bus.PublishPresence(NodePresence{Node: r.nodeID, User: u.id, App: app, PUIDs: u.puids[app], Presence: aggregateLocked(u, app), At: now})
		}
		return
	}
	s.current, s.currentAt = e.Current, now
	for app, p := range e.Apps {
		if _, ok := s.apps[app]; ok {
			s.apps[app] = devicePresence{p, now}
		}
	}
	for app := range s.apps {
		r.recomputeLocked(u, app, now)
	}
}
