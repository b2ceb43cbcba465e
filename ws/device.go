package ws

import (
	"context"
	"errors"
	"math"
	"net"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/presence-service/presence/core"
	"github.com/presence-service/presence/ws/internal/netpoll"
)

// deviceOutbox bounds the frames queued for one device; a device that lets
// more pile up is dropped (errno -6); its notifications stay queued.
const deviceOutbox = 256

// maxAckIDs bounds the ids of one ack (PROTOCOL §2): 100 ids of the
// store's 34 characters make an ack of about 3.8 KB, within the default
// limits.max_frame_bytes of 4096, and match notifications.window.
const maxAckIDs = 100

// verifyTimeout bounds one assertion check.
const verifyTimeout = 10 * time.Second

// transport is a device's connection as the device protocol uses it: the
// epoll one (ws/internal/netpoll) or a goroutine per connection
// (gorillaConn). Sends never wait for the peer.
type transport interface {
	// Reply queues an answer, written at once if the socket takes it.
	Reply(payload []byte) bool
	// Push queues a frame the server sends on its own.
	Push(payload []byte) bool
	// Close queues last (nil: none) and a close frame; later sends fail.
	Close(code int, reason string, last []byte)
	// Ping queues a WebSocket ping.
	Ping()
	// LastRead is when bytes last came from the device.
	LastRead() time.Time
	// Drop ends the connection of a peer presumed gone now: a close
	// frame goes out only if the socket takes it without waiting.
	Drop(code int, reason string)
}

// Close codes (RFC 6455 §7.4.1) the device protocol sends.
const (
	closeNormal        = 1000
	closeGoingAway     = 1001
	closeInvalidData   = 1007
	closePolicy        = 1008
	closeTryAgainLater = 1013
)

// idleReason is the close reason of a device dropped by the sweeper.
const idleReason = "no answer to pings for device.idle_timeout"

// device is the device protocol (PROTOCOL §2) on one connection: it turns
// messages into router calls and router events into frames, whatever the
// transport. Messages come one at a time (the transport's contract), so
// errors needs no lock.
type device struct {
	srv   *Server
	t     transport
	shard int // of s.live

	errors  int // consecutive
	limiter *core.RateLimiter

	session  atomic.Pointer[core.Session]
	lastPing atomic.Int64 // unix nanos of the last ping sent
	expired  atomic.Bool  // errno -3 sent
	gone     atomic.Bool  // the connection has ended
}

func (s *Server) newDevice(t transport) *device {
	d := &device{srv: s, t: t, shard: int(s.nextShard.Add(1)) % len(s.live.shards)}
	d.lastPing.Store(time.Now().UnixNano())
	return d
}

// track counts d among the live connections (for the sweeper, and for
// Wait) until Closed.
func (s *Server) track(d *device) {
	s.conns.Add(1)
	s.live.add(d)
}

// acceptDevice answers a device's upgrade that the front door read, and
// serves it through the epoll transport; early is what the client sent
// after its request.
func (s *Server) acceptDevice(nc net.Conn, key, early []byte) {
	if !netpoll.WriteAccept(nc, key) {
		return
	}
	c := s.poller.NewConn(nc)
	if c == nil {
		nc.Close()
		return
	}
	d := s.newDevice(c)
	s.track(d)
	c.Serve(d, early)
}

// Message handles one whole message from the device (netpoll.Handler):
// a text frame is one request. With inline it answers only requests
// that never wait, and reports false for the others.
func (d *device) Message(text bool, payload []byte, inline bool) bool {
	if !text {
		d.answerError(core.Errorf(core.ErrnoNotObject, "frame is not a JSON object: binary frame"))
		return true
	}
	if !utf8.Valid(payload) {
		d.t.Close(closeInvalidData, "text frame is not valid UTF-8", nil) // RFC 6455 §8.1
		return true
	}
	return d.handle(payload, inline)
}

// QueueFull drops a device that reads too slowly (netpoll.Handler).
func (d *device) QueueFull() {
	d.srv.router.Metrics.SlowConsumerDrops.Add(1)
	d.fail(core.ErrnoSlowConsumer, "")
}

// Closed tells the router that the connection has ended
// (netpoll.Handler).
func (d *device) Closed() {
	d.srv.live.remove(d)
	d.gone.Store(true)
	if s := d.session.Load(); s != nil {
		d.srv.router.Disconnect(s)
	}
	d.srv.conns.Done()
}

// handle answers one request. With inline it answers only requests that
// never wait, and reports false for the others: the transport then gives
// the request again where it may wait, and it is decoded again.
func (d *device) handle(data []byte, inline bool) (handled bool) {
	var session string
	if s := d.session.Load(); s != nil {
		session = s.ID()
	}
	pooled := requests.Get().(*request)
	*pooled = request{}
	defer requests.Put(pooled)
	req, err := decodeRequestInto(data, pooled, session)
	if err != nil {
		d.answerError(err)
		return true
	}
	if inline && !neverWaits(req.Type) {
		return false
	}
	var answer []byte
	switch req.Type {
	case "connect":
		answer, err = d.connect(req)
	case "status":
		answer, err = d.status(req)
	case "visibility":
		answer, err = d.visibility(req)
	case "ack":
		answer, err = d.ack(req)
	case "ping":
		answer = resultTrue
	default:
		err = core.Errorf(core.ErrnoUnknownType, "unknown type %q", req.Type)
	}
	if err != nil {
		d.answerError(err)
		return true
	}
	d.errors = 0
	d.t.Reply(answer)
	if req.Type == "connect" {
		d.pushPending()
	}
	return true
}

// neverWaits says whether a request type is answered from memory alone.
// The others may wait: connect on the identity verifier, ack on a store
// commit, visibility on a grant lookup.
func neverWaits(typ string) bool { return typ == "status" || typ == "ping" }

var resultTrue = []byte(`{"result":true}`)

// requireSession checks that the request quotes this socket's session.
func (d *device) requireSession(req *request) error {
	s := d.session.Load()
	if s == nil {
		return &core.Error{Errno: core.ErrnoNeedSession}
	}
	if req.SessionID != s.ID() {
		return &core.Error{Errno: core.ErrnoUnknownSession}
	}
	return nil
}

func (d *device) connect(req *request) ([]byte, error) {
	if d.session.Load() != nil {
		return nil, &core.Error{Errno: core.ErrnoAlreadyConnected}
	}
	if req.Assertion == "" {
		return nil, core.Errorf(core.ErrnoInvalidField, "assertion: missing")
	}
	deviceID := "default"
	if req.DeviceID != nil {
		deviceID = *req.DeviceID
	}
	if !core.ValidDeviceID(deviceID) {
		return nil, core.Errorf(core.ErrnoInvalidField, "device_id: want 1 to 64 of A-Z a-z 0-9 . _ -")
	}
	ctx, cancel := context.WithTimeout(context.Background(), verifyTimeout)
	defer cancel()
	who, err := d.srv.verifier.Verify(ctx, req.Assertion)
	if err != nil {
		var e *core.Error
		if !errors.As(err, &e) {
			d.srv.log.Warn("assertion check failed", "err", err)
			err = core.Errorf(core.ErrnoInvalidAssertion, "invalid assertion: the identity verifier failed")
		}
		return nil, err
	}
	session, ignored, err := d.srv.router.Connect(ctx, core.ConnectRequest{
		Identity: who, DeviceID: deviceID, AppIDs: req.AppIDs, Sink: d,
	})
	if err != nil {
		return nil, err
	}
	d.limiter = core.NewRateLimiter(d.srv.cfg.Limits.StatusPerMinute, time.Now())
	d.session.Store(session)
	if d.gone.Load() { // the socket ended while we connected
		d.srv.router.Disconnect(session)
	}
	b := append([]byte(nil), `{"result":true,"session_id":`...)
	b = appendString(b, session.ID())
	if len(ignored) > 0 {
		b = append(b, `,"ignored_application_ids":`...)
		b = appendAppIDs(b, ignored)
	}
	return append(b, '}'), nil
}

func (d *device) status(req *request) ([]byte, error) {
	if err := d.requireSession(req); err != nil {
		return nil, err
	}
	if err := d.rateLimit(); err != nil {
		return nil, err
	}
	if req.Status == nil {
		return nil, core.Errorf(core.ErrnoInvalidField, "status: missing")
	}
	st, err := core.ParseStatus(*req.Status)
	if err != nil {
		return nil, err
	}
	p := core.Presence{Status: st}
	if req.Message != nil {
		p.Message = *req.Message
	}
	var apps []core.AppID
	if req.HasAppIDs {
		apps = req.AppIDs
		if apps == nil {
			apps = []core.AppID{}
		}
	}
	if err := d.srv.router.SetStatus(d.session.Load(), p, apps); err != nil {
		return nil, err
	}
	return resultTrue, nil
}

func (d *device) visibility(req *request) ([]byte, error) {
	if err := d.requireSession(req); err != nil {
		return nil, err
	}
	if err := d.rateLimit(); err != nil {
		return nil, err
	}
	if !req.HasAppIDs {
		return nil, core.Errorf(core.ErrnoInvalidField, "application_ids: missing")
	}
	ignored, err := d.srv.router.SetVisibility(context.Background(), d.session.Load(), req.AppIDs)
	if err != nil {
		return nil, err
	}
	if len(ignored) == 0 {
		return resultTrue, nil
	}
	b := append([]byte(nil), `{"result":true,"ignored_application_ids":`...)
	b = appendAppIDs(b, ignored)
	return append(b, '}'), nil
}

func (d *device) ack(req *request) ([]byte, error) {
	if err := d.requireSession(req); err != nil {
		return nil, err
	}
	if len(req.IDs) == 0 {
		return nil, core.Errorf(core.ErrnoInvalidField, "ids: want a non-empty array of notification ids")
	}
	if len(req.IDs) > maxAckIDs {
		return nil, core.Errorf(core.ErrnoInvalidField, "ids: at most %d a request", maxAckIDs)
	}
	if err := d.srv.router.Ack(context.Background(), d.session.Load(), req.IDs); err != nil {
		return nil, err
	}
	return resultTrue, nil
}

func (d *device) rateLimit() error {
	ok, wait := d.limiter.Allow(time.Now(), 1)
	if ok {
		return nil
	}
	secs := int(math.Ceil(wait.Seconds()))
	return &rateLimited{retryAfter: secs}
}

type rateLimited struct{ retryAfter int }

func (e *rateLimited) Error() string { return "rate limited" }

// pushPending sends the first window of what was queued for the user
// before this connect; the rest follows as the device acks (core/flow.go).
func (d *device) pushPending() {
	if err := d.srv.router.PushPending(context.Background(), d.session.Load()); err != nil {
		d.srv.log.Error("pending notifications", "err", err)
	}
}

// answerError answers a failed request; a negative errno, or too many
// errors in a row, ends the session.
func (d *device) answerError(err error) {
	var rl *rateLimited
	if errors.As(err, &rl) {
		d.srv.router.Metrics.CountError(core.ErrnoRateLimited)
		d.t.Reply(appendError(nil, core.ErrnoRateLimited, core.ErrnoRateLimited.DefaultReason(), rl.retryAfter))
		return // not counted toward -5: a device that obeys retry_after is never dropped for it (PROTOCOL §2)
	}
	errno := core.ErrnoOf(err)
	if errno == core.ErrnoInternal {
		d.srv.log.Error("device request failed", "err", err)
	}
	d.srv.router.Metrics.CountError(errno)
	if errno.Fatal() {
		d.fail(errno, core.ReasonOf(err))
		return
	}
	d.t.Reply(appendError(nil, errno, core.ReasonOf(err), 0))
	d.countError()
}

func (d *device) countError() {
	d.errors++
	if d.errors >= d.srv.cfg.Limits.MaxConsecutiveErrors {
		d.srv.router.Metrics.CountError(core.ErrnoTooManyErrors)
		d.fail(core.ErrnoTooManyErrors, "")
	}
}

// fail sends a fatal errno and closes the socket.
func (d *device) fail(errno core.Errno, reason string) {
	if reason == "" {
		reason = errno.DefaultReason()
	}
	d.t.Close(closeCode(errno), reason, appendError(nil, errno, reason, 0))
}

func closeCode(errno core.Errno) int {
	switch errno {
	case core.ErrnoReplaced, core.ErrnoSessionTooOld:
		return closeNormal
	case core.ErrnoShuttingDown:
		return closeGoingAway
	case core.ErrnoSlowConsumer:
		return closeTryAgainLater
	}
	return closePolicy
}

// SendNotifications implements core.DeviceSink.
func (d *device) SendNotifications(ns []core.Notification) {
	for _, n := range ns {
		if !d.t.Push(appendNotification(nil, n)) {
			return
		}
	}
}

// Close implements core.DeviceSink.
func (d *device) Close(errno core.Errno) { d.fail(errno, "") }

var _ core.DeviceSink = (*device)(nil)
