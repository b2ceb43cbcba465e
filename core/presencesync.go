package core

// A node that starts knows nothing of the users other nodes show: its
// probes would answer them offline until their status changes. So Start
// asks every node, over the Bus, to say again what its devices show
// (RequestPresences); each answers with a NodePresence per user and app,
// at the time it was first said, so that the nodes that knew it already
// find nothing changed.

// answerPresenceRequest says again, for the node that asked, every
// NodePresence this node stands by.
func (r *Router) answerPresenceRequest(node string) {
	if node == r.nodeID {
		return
	}
	for _, u := range r.allUsers() {
		u.mu.Lock()
		for app := range u.shown {
			p, at := aggregateWithTimeLocked(u, app)
			if p.Status == Offline {
				continue
			}
			r.bus.PublishPresence(NodePresence{Node: r.nodeID, User: u.id, App: app, PUIDs: u.puids[app], Presence: p, At: at})
		}
		u.mu.Unlock()
	}
}
