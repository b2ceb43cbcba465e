package ws

import (
	"context"
	"errors"
	"io"
	"math"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/presence-service/presence/core"
)

// deviceOutbox bounds the frames queued for one device; a device that lets
// more pile up is dropped (errno -6); its notifications stay queued.
const deviceOutbox = 256

// verifyTimeout bounds one assertion check.
const verifyTimeout = 10 * time.Second

// device is one device channel: the socket, its session once connected,
// and what the sweeper needs to bound it.
type device struct {
	srv   *Server
	conn  conn
	fd    int             // -1 when read by a goroutine (TLS, or no epoll)
	shard int             // of s.live
	raw   syscall.RawConn // for reads that never wait

	rmu     sync.Mutex  // guards the reader's state below; one reader at a time
	again   atomic.Bool // a reader found rmu taken: read once more before leaving
	partial []byte      // the start of a frame not yet complete
	held    bool        // partial starts with whole frames the collector left for a reader
	msg     []byte      // a fragmented message being put together
	errors  int         // consecutive
	limiter *core.RateLimiter

	session  atomic.Pointer[core.Session]
	lastSeen atomic.Int64 // unix nanos of the last bytes received
	lastPing atomic.Int64 // unix nanos of the last ping sent
	expired  atomic.Bool  // errno -3 sent
	gone     atomic.Bool  // end has run
	ended    sync.Once
}

var (
	errWouldBlock = errors.New("would block")
	errEOF        = errors.New("eof")
	errNoPoller   = errors.New("no epoll here")
)

// readBufSize holds any frame within limits.max_frame_bytes, and then some.
func (s *Server) readBufSize() int { return s.cfg.Limits.MaxFrameBytes + 14 + 1024 }

func (s *Server) serveDevice(w http.ResponseWriter, r *http.Request) {
	if s.router.ShuttingDown() {
		http.Error(w, "shutting down", http.StatusServiceUnavailable)
		return
	}
	nc, early, ok := upgrade(w, r)
	if !ok {
		return
	}
	s.startDevice(nc, early)
}

// acceptDevice answers a device's upgrade that the front door read, and
// starts the device.
func (s *Server) acceptDevice(nc net.Conn, key, early []byte) {
	if writeAccept(nc, key) {
		s.startDevice(nc, early)
	}
}

// startDevice runs a device channel on an upgraded connection; early is
// what the client sent after its request.
func (s *Server) startDevice(nc net.Conn, early []byte) {
	s.conns.Add(1)
	fd, raw := -1, syscall.RawConn(nil)
	if tc, ok := nc.(*net.TCPConn); ok {
		fd, raw = rawFD(tc)
	}
	d := &device{srv: s, fd: -1, shard: int(s.nextShard.Add(1)) % len(s.live.shards)}
	d.conn = conn{nc: nc, raw: raw, maxQueue: deviceOutbox, onEnd: d.end}
	d.conn.onSlow = func() {
		s.router.Metrics.SlowConsumerDrops.Add(1)
		d.fail(core.ErrnoSlowConsumer, "")
	}
	now := time.Now().UnixNano()
	d.lastSeen.Store(now)
	d.lastPing.Store(now)
	s.live.add(d)
	d.partial = early
	if len(early) > 0 {
		d.rmu.Lock()
		d.consume(nil, false)
		d.rmu.Unlock()
	}
	// Park the socket in epoll: from here, no goroutine waits on it. The
	// handler returns, and net/http forgets the hijacked connection.
	if fd >= 0 && s.poller != nil {
		d.fd, d.raw = fd, raw // before add: the poller may hand d to a reader at once
		if s.poller.add(fd, d) {
			return
		}
		d.fd, d.raw = -1, nil
	}
	d.readLoop()
}

// end releases the connection once: out of epoll, socket closed, the
// router told. Any goroutine may call it; it never waits for the reader.
func (d *device) end() {
	d.ended.Do(func() {
		if d.fd >= 0 {
			d.srv.poller.remove(d.fd, d)
		}
		if d.conn.sentClose() {
			go lingerClose(d.conn.nc)
		} else {
			d.conn.nc.Close()
		}
		d.srv.live.remove(d)
		d.gone.Store(true)
		if s := d.session.Load(); s != nil {
			d.srv.router.Disconnect(s)
		}
		d.srv.conns.Done()
	})
}

// lingerTime bounds how long a connection the server closed first
// waits for its peer to close too.
const lingerTime = 2 * time.Second

// lingerClose ends a connection whose close frame is out: it sends FIN,
// then reads and drops what the peer still sends until the peer closes
// too, or for lingerTime. Closing at once with bytes unread would send a
// reset instead, and the peer's TCP would throw away whatever it had not
// read yet: the errno that said why, and the close frame.
func lingerClose(nc net.Conn) {
	if tc, ok := nc.(*net.TCPConn); ok && tc.CloseWrite() == nil {
		tc.SetReadDeadline(time.Now().Add(lingerTime))
		io.Copy(io.Discard, tc)
	}
	nc.Close()
}

// handle answers one request frame. On the collector it answers only
// requests that never wait, and reports false for the others: the frame
// is then left for a reader, which decodes it again.
func (d *device) handle(data []byte, onCollector bool) (handled bool) {
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
	if onCollector && !neverWaits(req.Type) {
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
	if &answer[0] == &resultTrue[0] {
		d.conn.sendFrame(resultTrueFrame, true) // handlers return resultTrue itself: the most frequent answer, framed once
	} else {
		d.conn.send(answer, true)
	}
	if req.Type == "connect" {
		d.pushPending()
	}
	return true
}

// neverWaits says whether a request type is answered from memory alone.
// The others may wait: connect on the identity verifier, ack on a store
// commit, visibility on a grant lookup.
func neverWaits(typ string) bool { return typ == "status" || typ == "ping" }

var (
	resultTrue      = []byte(`{"result":true}`)
	resultTrueFrame = encodeFrame(opText, resultTrue)
)

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
	if len(req.IDs) > 1000 {
		return nil, core.Errorf(core.ErrnoInvalidField, "ids: at most 1000 a request")
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

// pushPending sends what was queued for the user before this connect.
func (d *device) pushPending() {
	ns, err := d.srv.router.PendingNotifications(context.Background(), d.session.Load())
	if err != nil {
		d.srv.log.Error("pending notifications", "err", err)
		return
	}
	d.SendNotifications(ns)
}

// answerError answers a failed request; a negative errno, or too many
// errors in a row, ends the session.
func (d *device) answerError(err error) {
	var rl *rateLimited
	if errors.As(err, &rl) {
		d.srv.router.Metrics.CountError(core.ErrnoRateLimited)
		d.conn.send(appendError(nil, core.ErrnoRateLimited, core.ErrnoRateLimited.DefaultReason(), rl.retryAfter), true)
		d.countError()
		return
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
	d.conn.send(appendError(nil, errno, core.ReasonOf(err), 0), true)
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
	d.conn.close(closeCode(errno), reason, appendError(nil, errno, reason, 0))
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
		if !d.conn.send(appendNotification(nil, n), false) {
			return
		}
	}
}

// Close implements core.DeviceSink.
func (d *device) Close(errno core.Errno) { d.fail(errno, "") }

var _ core.DeviceSink = (*device)(nil)
