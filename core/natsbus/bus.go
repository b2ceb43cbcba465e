package natsbus

import (
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/presence-service/presence/core"
)

// Subjects of the bus. They sit under presence.bus., apart from the
// JetStream streams' subjects (presence.n.>, presence.s.>), so that no
// stream captures a routed update.
const (
	statusPrefix      = "presence.bus.s."
	invalidationSubj  = "presence.bus.i"
	notificationsSubj = "presence.bus.n"
	presenceSubj      = "presence.bus.p"
	deviceSubj        = "presence.bus.d"
	heartbeatSubj     = "presence.bus.h"
	syncSubj          = "presence.bus.sync"
	channelsSubj      = "presence.bus.c"
	everything        = "presence.bus.>"
	flushTimeout      = 5 * time.Second
)

// Bus is core.Bus over one NATS connection. Its methods are safe for
// concurrent use.
type Bus struct {
	nc     *nats.Conn
	sub    *nats.Subscription
	origin [originLen]byte
	log    *slog.Logger

	subs core.BusSubscribers

	sendFailures atomic.Uint64 // publishes the connection refused (closed)
	malformed    atomic.Uint64 // messages on the bus's subjects that did not decode
}

// New subscribes to the bus's subjects on nc and returns the Bus. It sets
// nc's reconnect handler (calling the one nc had first): after a
// reconnect, the bus tells its subscribers core.CachesLost, since
// invalidations sent while the link was down never reach this node.
// Close ends the subscription; nc stays the caller's to close.
func New(nc *nats.Conn, log *slog.Logger) (*Bus, error) {
	if log == nil {
		log = slog.Default()
	}
	b := &Bus{nc: nc, log: log}
	if _, err := rand.Read(b.origin[:]); err != nil {
		return nil, err
	}
	sub, err := nc.Subscribe(everything, b.receive)
	if err != nil {
		return nil, fmt.Errorf("natsbus: subscribe %s: %w", everything, err)
	}
	// A node's bus carries every update of the deployment: let it queue
	// far more than the client's default before NATS drops (a slow
	// consumer) rather than block the connection's reader.
	if err := sub.SetPendingLimits(1<<20, 256<<20); err != nil {
		sub.Unsubscribe()
		return nil, err
	}
	// The subscription must be known to the server before New returns,
	// or the first messages other nodes send could miss this node.
	if err := nc.FlushTimeout(flushTimeout); err != nil {
		sub.Unsubscribe()
		return nil, fmt.Errorf("natsbus: subscribe %s: %w", everything, err)
	}
	b.sub = sub
	prev := nc.Opts.ReconnectedCB
	nc.SetReconnectHandler(func(c *nats.Conn) {
		if prev != nil {
			prev(c)
		}
		b.log.Warn("bus: reconnected to NATS; dropping cached apps and grants")
		b.dispatch(message{kind: kindInvalidation, inv: core.Invalidation{Kind: core.CachesLost}})
	})
	return b, nil
}

// Close ends the bus's subscription. Subscribers hear nothing after it.
func (b *Bus) Close() error { return b.sub.Unsubscribe() }

// Subscribe implements core.Bus.
func (b *Bus) Subscribe(node core.BusSubscriber) func() { return b.subs.Subscribe(node) }

// PublishStatus implements core.Bus: this node's subscribers get u before
// it returns; other nodes get it through NATS, in the order of this
// node's calls (one connection, one subscription per node). It never
// blocks: while NATS is unreachable the client buffers, and a closed
// connection drops (counted; Ping reports the link).
func (b *Bus) PublishStatus(app core.AppID, u core.StatusUpdate) {
	for _, s := range b.subs.All() {
		s.DeliverStatus(app, u)
	}
	subj := statusPrefix + strconv.FormatInt(int64(app), 10)
	if err := b.nc.Publish(subj, encodeStatus(b.origin, app, u)); err != nil {
		b.sendFailures.Add(1)
	}
}

// PublishPresence implements core.Bus: this node's subscribers get p
// before it returns; other nodes get it through NATS, in the order of
// this node's calls. It never blocks.
func (b *Bus) PublishPresence(p core.NodePresence) {
	for _, s := range b.subs.All() {
		s.DeliverPresence(p)
	}
	if err := b.nc.Publish(presenceSubj, encodePresence(b.origin, p)); err != nil {
		b.sendFailures.Add(1)
	}
}

// PublishDevice implements core.Bus: this node's subscribers get e before
// it returns; other nodes get it through NATS, in the order of this
// node's calls. It never blocks.
func (b *Bus) PublishDevice(e core.DeviceEvent) {
	for _, s := range b.subs.All() {
		s.DeliverDevice(e)
	}
	if err := b.nc.Publish(deviceSubj, encodeDevice(b.origin, e)); err != nil {
		b.sendFailures.Add(1)
	}
}

// RequestPresences implements core.Bus. Only the other nodes answer.
func (b *Bus) RequestPresences(node string) {
	if err := b.nc.Publish(syncSubj, encodeNode(b.origin, kindSyncRequest, node)); err != nil {
		b.sendFailures.Add(1)
	}
}

// PublishHeartbeat implements core.Bus. It is not delivered to this
// node's own subscribers: a node does not watch its own liveness.
func (b *Bus) PublishHeartbeat(node string) {
	if err := b.nc.Publish(heartbeatSubj, encodeNode(b.origin, kindHeartbeat, node)); err != nil {
		b.sendFailures.Add(1)
	}
}

// PublishAppChannels implements core.Bus: this node's subscribers get c
// before it returns; other nodes get it through NATS, in the order of
// this node's calls. It never blocks.
func (b *Bus) PublishAppChannels(c core.AppChannels) {
	for _, s := range b.subs.All() {
		s.DeliverAppChannels(c)
	}
	if err := b.nc.Publish(channelsSubj, encodeAppChannels(b.origin, c)); err != nil {
		b.sendFailures.Add(1)
	}
}

// PublishNotifications implements core.Bus: this node's subscribers get ns
// before it returns; other nodes get them through NATS. Like
// PublishStatus, it never blocks.
func (b *Bus) PublishNotifications(ns []core.Notification) {
	if len(ns) == 0 {
		return
	}
	for _, s := range b.subs.All() {
		s.DeliverNotifications(ns)
	}
	if err := b.nc.Publish(notificationsSubj, encodeNotifications(b.origin, ns)); err != nil {
		b.sendFailures.Add(1)
	}
}

// Invalidate implements core.Bus: this node has applied inv when it
// returns nil, and the NATS server has it, routing it to every node
// subscribed now. Core NATS keeps no copy for a node that is
// disconnected at that moment: such a node drops every cache when it
// reconnects (core.CachesLost).
func (b *Bus) Invalidate(ctx context.Context, inv core.Invalidation) error {
	pubErr := b.nc.Publish(invalidationSubj, encodeInvalidation(b.origin, inv))
	for _, s := range b.subs.All() {
		s.Invalidated(inv)
	}
	if pubErr != nil {
		return fmt.Errorf("natsbus: invalidation: %w", pubErr)
	}
	if err := b.flush(ctx); err != nil {
		return fmt.Errorf("natsbus: invalidation: %w", err)
	}
	return nil
}

// Ping implements core.Bus: nil while the connection is up and the
// server answers a round trip.
func (b *Bus) Ping(ctx context.Context) error {
	if !b.nc.IsConnected() {
		return fmt.Errorf("nats: %s", b.nc.Status())
	}
	return b.flush(ctx)
}

// flush waits for the server to have processed everything sent so far.
func (b *Bus) flush(ctx context.Context) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, flushTimeout)
		defer cancel()
	}
	return b.nc.FlushWithContext(ctx)
}

// Stats are the bus's counts of what it could not carry.
type Stats struct {
	SendFailures uint64 // publishes refused by a closed connection
	Malformed    uint64 // received messages that did not decode
	Dropped      uint64 // received messages NATS dropped: this node was too slow
}

// Stats returns the bus's counts.
func (b *Bus) Stats() Stats {
	dropped, _ := b.sub.Dropped()
	return Stats{SendFailures: b.sendFailures.Load(), Malformed: b.malformed.Load(), Dropped: uint64(max(dropped, 0))}
}

// receive is the subscription's handler: NATS calls it on one goroutine,
// in the order the server delivers, which keeps each publisher's order.
func (b *Bus) receive(msg *nats.Msg) {
	m, err := decode(msg.Data)
	if err != nil {
		if b.malformed.Add(1) == 1 {
			b.log.Error("bus: dropping a malformed message", "subject", msg.Subject, "err", err)
		}
		return
	}
	if m.origin == b.origin {
		return // applied when it was published
	}
	b.dispatch(m)
}

func (b *Bus) dispatch(m message) {
	for _, s := range b.subs.All() {
		switch m.kind {
		case kindStatus:
			s.DeliverStatus(m.app, m.status)
		case kindInvalidation:
			s.Invalidated(m.inv)
		case kindNotifications:
			s.DeliverNotifications(m.notes)
		case kindPresence:
			s.DeliverPresence(m.pres)
		case kindDevice:
			s.DeliverDevice(m.dev)
		case kindHeartbeat:
			s.DeliverHeartbeat(m.node)
		case kindSyncRequest:
			s.DeliverPresenceRequest(m.node)
		case kindAppChannels:
			s.DeliverAppChannels(m.channels)
		}
	}
}

var _ core.Bus = (*Bus)(nil)
