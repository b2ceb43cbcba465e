package core

import "context"

// LocalBus is the Bus of one process: publishing is a direct call to each
// subscriber, on the publisher's goroutine, so order and delivery are
// those of the call itself. Several routers in one process (tests) may
// share one LocalBus, as nodes share a cluster's bus.
type LocalBus struct {
	subs BusSubscribers
}

// NewLocalBus returns a bus with no subscriber.
func NewLocalBus() *LocalBus {
	return &LocalBus{}
}

// Subscribe implements Bus.
func (b *LocalBus) Subscribe(node BusSubscriber) func() { return b.subs.Subscribe(node) }

// PublishStatus implements Bus: each subscriber gets u before it returns.
func (b *LocalBus) PublishStatus(app AppID, u StatusUpdate) {
	for _, s := range b.subs.All() {
		s.DeliverStatus(app, u)
	}
}

// PublishPresence implements Bus: each subscriber gets p before it returns.
func (b *LocalBus) PublishPresence(p NodePresence) {
	for _, s := range b.subs.All() {
		s.DeliverPresence(p)
	}
}

// PublishDevice implements Bus: each subscriber gets e before it returns.
func (b *LocalBus) PublishDevice(e DeviceEvent) {
	for _, s := range b.subs.All() {
		s.DeliverDevice(e)
	}
}

// RequestPresences implements Bus.
func (b *LocalBus) RequestPresences(node string) {
	for _, s := range b.subs.All() {
		s.DeliverPresenceRequest(node)
	}
}

// PublishHeartbeat implements Bus.
func (b *LocalBus) PublishHeartbeat(node string) {
	for _, s := range b.subs.All() {
		s.DeliverHeartbeat(node)
	}
}

// PublishNotifications implements Bus: each subscriber gets ns before it
// returns.
func (b *LocalBus) PublishNotifications(ns []Notification) {
	for _, s := range b.subs.All() {
		s.DeliverNotifications(ns)
	}
}

// PublishAppChannels implements Bus: each subscriber gets c before it
// returns.
func (b *LocalBus) PublishAppChannels(c AppChannels) {
	for _, s := range b.subs.All() {
		s.DeliverAppChannels(c)
	}
}

// Invalidate implements Bus: each subscriber has applied inv when it
// returns.
func (b *LocalBus) Invalidate(_ context.Context, inv Invalidation) error {
	for _, s := range b.subs.All() {
		s.Invalidated(inv)
	}
	return nil
}

// Ping implements Bus: a call within a process always arrives.
func (b *LocalBus) Ping(context.Context) error { return nil }

var _ Bus = (*LocalBus)(nil)
