package core

// busSubscriber is the Router's receiving side of its Bus. It is a type of
// its own so that the Router's exported methods stay those edges call.
type busSubscriber struct{ r *Router }

// DeliverStatus implements BusSubscriber: the app's channels on this node
// get u, or, while it has none here, u waits in the app's queue.
func (b busSubscriber) DeliverStatus(app AppID, u StatusUpdate) {
	b.r.deliverStatus(app, u)
}

// DeliverDevice implements BusSubscriber.
func (b busSubscriber) DeliverDevice(e DeviceEvent) { b.r.deliverDevice(e) }

// DeliverPresence implements BusSubscriber.
func (b busSubscriber) DeliverPresence(p NodePresence) {
	b.r.heard(p.Node)
	b.r.deliverPresence(p)
}

// DeliverPresenceRequest implements BusSubscriber.
func (b busSubscriber) DeliverPresenceRequest(node string) { b.r.answerPresenceRequest(node) }

// DeliverHeartbeat implements BusSubscriber.
func (b busSubscriber) DeliverHeartbeat(node string) { b.r.heard(node) }

// DeliverNotifications implements BusSubscriber.
func (b busSubscriber) DeliverNotifications(ns []Notification) {
	b.r.deliverNotificationsSafely(ns)
}

// DeliverAppChannels implements BusSubscriber.
func (b busSubscriber) DeliverAppChannels(c AppChannels) { b.r.deliverAppChannels(c) }

// Invalidated implements BusSubscriber.
func (b busSubscriber) Invalidated(inv Invalidation) {
	r := b.r
	switch inv.Kind {
	case GrantAdded:
		r.grants.invalidate(inv.User) // after the registry, before the live state: see grantCache
		if u := r.lockUser(inv.User, false); u != nil {
			u.puids = withPUID(u.puids, inv.App, inv.PUID)
			if p, ok := u.shown[inv.App]; ok {
				r.publish(inv.App, StatusUpdate{PUID: inv.PUID, Status: p.Status, Message: p.Message, At: r.opts.Now()})
			}
			u.mu.Unlock()
		}
	case GrantRevoked:
		r.grants.invalidate(inv.User) // after the registry, before the live state: see grantCache
		if u := r.lockUser(inv.User, false); u != nil {
			u.puids = withoutPUID(u.puids, inv.App, inv.PUID)
			u.mu.Unlock()
		}
		r.view.forgetPUID(inv.User, inv.App, inv.PUID)
		if r.puidGrants != nil {
			r.puidGrants.forget(inv.PUID)
		}
	case AppChanged:
		r.forgetApp(inv.App)
		if inv.Close != 0 {
			r.closeAppChannels(inv.App, inv.Close)
		}
	case CachesLost:
		r.forgetAllApps()
		r.grants.invalidateAll()
		if r.puidGrants != nil {
			r.puidGrants.forgetAll()
		}
		go r.pushMissed() // it reads the store: not on the bus's goroutine
		r.askHolders()    // sharedqueue.go: which apps nodes hold may have changed meanwhile
	}
}

var _ BusSubscriber = busSubscriber{}
