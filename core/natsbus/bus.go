package natsbus

import (
	"cmp"
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/presence-service/presence/core"
)

// Subjects of the bus. They sit under presence.bus., apart from the
// JetStream streams' subjects (presence.n.>, presence.s.>), so that no
// stream captures a routed update.
// Every message travels in a frame (batch.go) on framesSubj; a node
// subscribes to everything under presence.bus. so that subjects added
// later reach it too.
const (
	framesSubj   = "presence.bus.f"
	everything   = "presence.bus.>"
	flushTimeout = 5 * time.Second
)

// Bus is core.Bus over one NATS connection. Its methods are safe for
// concurrent use.
type Bus struct {
	nc     *nats.Conn
	sub    *nats.Subscription
	origin [originLen]byte
	log    *slog.Logger

	mu   sync.Mutex // guards: writes to subs
	subs atomic.Pointer[[]core.BusSubscriber]

	out     *outbox
	stop    chan struct{} // closed by Close: the publisher sends what is queued and returns
	stopped chan struct{} // closed when the publisher has returned
	sendMu  sync.Mutex    // held while frames are handed to NATS, so that they go in order
	closing sync.Once

	sendFailures atomic.Uint64 // frames the connection refused (closed)
	malformed    atomic.Uint64 // frames on the bus's subjects that did not decode, whole or in part
	sentFrames   atomic.Uint64 // frames handed to NATS
	sentMessages atomic.Uint64 // messages in them
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
	b := &Bus{nc: nc, log: log, stop: make(chan struct{}), stopped: make(chan struct{})}
	if _, err := rand.Read(b.origin[:]); err != nil {
		return nil, err
	}
	b.out = newOutbox(b.origin, int(nc.MaxPayload()))
	b.subs.Store(new([]core.BusSubscriber))
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
	go b.publish()
	return b, nil
}

// Close hands NATS what is queued and ends the bus's subscription.
// Subscribers hear nothing after it, and other nodes nothing this node
// publishes after it.
func (b *Bus) Close() error {
	b.closing.Do(func() { close(b.stop) })
	<-b.stopped
	b.send()
	b.out.close()
	b.send() // what was queued between the two
	return b.sub.Unsubscribe()
}

// publish is the bus's publisher: it sends what is queued each time the
// outbox has some, until Close.
func (b *Bus) publish() {
	defer close(b.stopped)
	for {
		select {
		case <-b.out.wake:
			b.send()
		case <-b.stop:
			return
		}
	}
}

// send hands NATS every frame queued, oldest first, and returns the
// first error of a publish.
func (b *Bus) send() error {
	b.sendMu.Lock()
	defer b.sendMu.Unlock()
	full, last, queued := b.out.take()
	if last != nil {
		full = append(full, last)
	}
	if len(full) == 0 {
		return nil
	}
	b.sentFrames.Add(uint64(len(full)))
	b.sentMessages.Add(uint64(queued))
	var first error
	for _, f := range full {
		if err := b.nc.Publish(framesSubj, f); err != nil {
			b.sendFailures.Add(1)
			first = cmp.Or(first, err)
		}
	}
	b.out.recycle(last)
	return first
}

// Subscribe implements core.Bus.
func (b *Bus) Subscribe(node core.BusSubscriber) func() {
	b.mu.Lock()
	defer b.mu.Unlock()
	next := append(slices.Clone(*b.subs.Load()), node)
	b.subs.Store(&next)
	var once sync.Once
	return func() {
		once.Do(func() {
			b.mu.Lock()
			defer b.mu.Unlock()
			cur := *b.subs.Load()
			if i := slices.Index(cur, node); i >= 0 {
				next := slices.Delete(slices.Clone(cur), i, i+1)
				b.subs.Store(&next)
			}
		})
	}
}

// PublishStatus implements core.Bus: this node's subscribers get u before
// it returns; other nodes get it through NATS, in the order of this
// node's calls (one connection, one subscription per node). It never
// blocks: while NATS is unreachable the client buffers, and a closed
// connection drops (counted; Ping reports the link).
func (b *Bus) PublishStatus(app core.AppID, u core.StatusUpdate) {
	for _, s := range *b.subs.Load() {
		s.DeliverStatus(app, u)
	}
	w, start := b.out.begin()
	b.out.end(w.status(app, u), start)
}

// PublishPresence implements core.Bus: this node's subscribers get p
// before it returns; other nodes get it through NATS, in the order of
// this node's calls. It never blocks.
func (b *Bus) PublishPresence(p core.NodePresence) {
	for _, s := range *b.subs.Load() {
		s.DeliverPresence(p)
	}
	w, start := b.out.begin()
	b.out.end(w.presence(p), start)
}

// PublishDevice implements core.Bus: this node's subscribers get e before
// it returns; other nodes get it through NATS, in the order of this
// node's calls. It never blocks.
func (b *Bus) PublishDevice(e core.DeviceEvent) {
	for _, s := range *b.subs.Load() {
		s.DeliverDevice(e)
	}
	w, start := b.out.begin()
	b.out.end(w.device(e), start)
}

// RequestPresences implements core.Bus. Only the other nodes answer.
func (b *Bus) RequestPresences(node string) {
	w, start := b.out.begin()
	b.out.end(w.node(kindSyncRequest, node), start)
}

// PublishHeartbeat implements core.Bus. It is not delivered to this
// node's own subscribers: a node does not watch its own liveness.
func (b *Bus) PublishHeartbeat(node string) {
	w, start := b.out.begin()
	b.out.end(w.node(kindHeartbeat, node), start)
}

// PublishAppChannels implements core.Bus: this node's subscribers get c
// before it returns; other nodes get it through NATS, in the order of
// this node's calls. It never blocks.
func (b *Bus) PublishAppChannels(c core.AppChannels) {
	for _, s := range *b.subs.Load() {
		s.DeliverAppChannels(c)
	}
	w, start := b.out.begin()
	b.out.end(w.appChannels(c), start)
}

// PublishNotifications implements core.Bus: this node's subscribers get ns
// before it returns; other nodes get them through NATS. Like
// PublishStatus, it never blocks.
func (b *Bus) PublishNotifications(ns []core.Notification) {
	if len(ns) == 0 {
		return
	}
	for _, s := range *b.subs.Load() {
		s.DeliverNotifications(ns)
	}
	w, start := b.out.begin()
	b.out.end(w.notifications(ns), start)
}

// Invalidate implements core.Bus: this node has applied inv when it
// returns nil, and the NATS server has it, routing it to every node
// subscribed now. Core NATS keeps no copy for a node that is
// disconnected at that moment: such a node drops every cache when it
// reconnects (core.CachesLost).
func (b *Bus) Invalidate(ctx context.Context, inv core.Invalidation) error {
	w, start := b.out.begin()
	b.out.end(w.invalidation(inv), start)
	// Sent here rather than by the publisher, after what was queued
	// before it: once send returns, the frame holding inv is with NATS
	// (sent by this call or by the publisher before it).
	pubErr := b.send()
	for _, s := range *b.subs.Load() {
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
	SendFailures uint64 // frames refused by a closed connection
	Malformed    uint64 // received frames that did not decode, whole or in part
	Dropped      uint64 // received frames NATS dropped: this node was too slow
	SentFrames   uint64 // frames handed to NATS
	SentMessages uint64 // messages in them
}

// Stats returns the bus's counts.
func (b *Bus) Stats() Stats {
	dropped, _ := b.sub.Dropped()
	return Stats{SendFailures: b.sendFailures.Load(), Malformed: b.malformed.Load(), Dropped: uint64(max(dropped, 0)),
		SentFrames: b.sentFrames.Load(), SentMessages: b.sentMessages.Load()}
}

// receive is the subscription's handler: NATS calls it on one goroutine,
// in the order the server delivers, which keeps each publisher's order.
// A message that does not decode is dropped, the frame's others applied;
// a frame whose framing is broken is applied up to the break.
func (b *Bus) receive(msg *nats.Msg) {
	origin, fr, err := readFrame(msg.Data)
	if err == nil && origin == b.origin {
		return // applied when it was published
	}
	for err == nil {
		data, ok := fr.next()
		if !ok {
			err = fr.err
			break
		}
		m, merr := decodeMessage(data)
		if merr != nil {
			b.dropMalformed(msg.Subject, merr)
			continue
		}
		b.dispatch(m)
	}
	if err != nil {
		b.dropMalformed(msg.Subject, err)
	}
}

// dropMalformed counts a frame, or a message of one, that did not decode,
// and logs the first: frames come from other nodes, and a bad one must
// not stop this node.
func (b *Bus) dropMalformed(subject string, err error) {
	if b.malformed.Add(1) == 1 {
		b.log.Error("bus: dropping a malformed message", "subject", subject, "err", err)
	}
}

func (b *Bus) dispatch(m message) {
	for _, s := range *b.subs.Load() {
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
