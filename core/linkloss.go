package core

// A cluster node that loses its link to the others (NATS) must not serve
// a split view (PROTOCOL §10): it ends every device session and app
// channel with errno -4 and refuses new ones until the link is back.
// Devices and apps connect again, to this node once it recovers or to
// another meanwhile. Like a shutdown, the loss is a hand-over: apps are
// not told offline for the devices it drops (they are back elsewhere, or
// the node that would tell it cannot reach the apps' nodes anyway).

// LinkLost ends every device session and app channel of this node with
// errno -4 and refuses connects and attaches until LinkRestored. Calling
// it again while the link is down does nothing.
func (r *Router) LinkLost() {
	if r.linkLost.Swap(true) {
		return
	}
	r.log.Error("lost the link to the cluster: ending every session and channel with errno -4 until it is back")
	for _, u := range r.allUsers() {
		u.mu.Lock()
		for _, s := range u.sessions {
			if s.graceTimer != nil {
				s.graceTimer.Stop()
			}
			if !s.gone && !s.replaced {
				s.sink.Close(ErrnoShuttingDown)
				r.Metrics.DevicesConnected.Add(-1)
			}
			s.replaced = true // its Disconnect, when the edge calls it, finds nothing to do
		}
		clear(u.sessions)
		clear(u.shown) // a device that comes back here shows its status again
		r.dropUserIfIdleLocked(u)
		u.mu.Unlock()
	}
	r.CloseAllApps(ErrnoShuttingDown)
}

// LinkRestored lets devices and apps connect again.
func (r *Router) LinkRestored() {
	if r.linkLost.Swap(false) {
		r.log.Info("the link to the cluster is back: accepting devices and apps")
		r.releaseApps(false) // sharedqueue.go
	}
}

// refusing reports whether the node turns new sessions and channels away
// (errno -4): it is shutting down, or has lost its link to the cluster.
func (r *Router) refusing() bool { return r.shuttingDown.Load() || r.linkLost.Load() }
