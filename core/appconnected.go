package core

// AppConnected reports whether at least one channel (WebSocket or XMPP)
// of app is attached now; the /me page shows it. It creates no state for
// an app that has none.
func (r *Router) AppConnected(id AppID) bool {
	sh := &r.apps[uint64(id)%shardCount]
	sh.mu.Lock()
	a := sh.m[id]
	sh.mu.Unlock()
	if a == nil {
		return false
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.sinks) > 0
}
