package ws

import (
	"context"
	"errors"
	"math"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/presence-service/presence/core"
)

// deviceOutbox bounds the frames queued for one device; a device that lets
// more pile up is dropped (errno -6); its notifications stay queued.
const deviceOutbox = 256

// verifyTimeout bounds one assertion check.
const verifyTimeout = 10 * time.Second

// device is one device channel: the socket, its session once connected,
// and the timers that bound it.
type device struct {
	srv  *Server
	conn conn

	// owned by the reader goroutine:
	session *core.Session
	errors  int // consecutive
	limiter *core.RateLimiter

	mu         sync.Mutex // guards: maxSession, pinger
	maxSession *time.Timer
	pinger     *time.Timer
}

func (s *Server) serveDevice(w http.ResponseWriter, r *http.Request) {
	if s.router.ShuttingDown() {
		http.Error(w, "shutting down", http.StatusServiceUnavailable)
		return
	}
	c, err := s.upgrader.Upgrade(w, r, nil)
	if err != nil {
		return // the upgrader has answered
	}
	s.conns.Add(1)
	defer s.conns.Done()
	d := &device{srv: s}
	d.conn = conn{ws: c, maxQueue: deviceOutbox}
	d.conn.onSlow = func() {
		s.router.Metrics.SlowConsumerDrops.Add(1)
		d.fail(core.ErrnoSlowConsumer, "")
	}
	d.run()
}

// run is the reader loop; when it returns the socket is gone.
func (d *device) run() {
	cfg := d.srv.cfg
	ws := d.conn.ws
	ws.SetReadLimit(int64(cfg.Limits.MaxFrameBytes))
	idle := cfg.Device.IdleTimeout.Duration
	ws.SetReadDeadline(time.Now().Add(idle))
	ws.SetPongHandler(func(string) error { return ws.SetReadDeadline(time.Now().Add(idle)) })
	d.mu.Lock()
	d.pinger = time.AfterFunc(idle/2, func() {
		// A device that answers pings keeps its read deadline moving.
		if ws.WriteControl(websocket.PingMessage, nil, time.Now().Add(writeWait)) == nil {
			d.mu.Lock()
			d.pinger.Reset(idle / 2)
			d.mu.Unlock()
		}
	})
	d.mu.Unlock()
	defer func() {
		d.mu.Lock()
		d.pinger.Stop()
		if d.maxSession != nil {
			d.maxSession.Stop()
		}
		d.mu.Unlock()
		if d.session != nil {
			d.srv.router.Disconnect(d.session)
		}
		ws.Close()
	}()
	for {
		kind, data, err := ws.ReadMessage()
		if err != nil {
			return // gorilla has sent 1009 for an oversize frame
		}
		ws.SetReadDeadline(time.Now().Add(idle))
		if kind != websocket.TextMessage {
			d.answerError(core.Errorf(core.ErrnoNotObject, "frame is not a JSON object: binary frame"))
			continue
		}
		d.handle(data)
	}
}

// handle answers one request frame.
func (d *device) handle(data []byte) {
	req, err := decodeRequest(data)
	if err != nil {
		d.answerError(err)
		return
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
		return
	}
	d.errors = 0
	d.conn.send(answer, true)
	if req.Type == "connect" {
		d.pushPending()
	}
}

var resultTrue = []byte(`{"result":true}`)

// requireSession checks that the request quotes this socket's session.
func (d *device) requireSession(req *request) error {
	if d.session == nil {
		return &core.Error{Errno: core.ErrnoNeedSession}
	}
	if req.SessionID != d.session.ID() {
		return &core.Error{Errno: core.ErrnoUnknownSession}
	}
	return nil
}

func (d *device) connect(req *request) ([]byte, error) {
	if d.session != nil {
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
	d.session = session
	d.limiter = core.NewRateLimiter(d.srv.cfg.Limits.StatusPerMinute, time.Now())
	if max := d.srv.cfg.Device.MaxSession.Duration; max > 0 {
		d.mu.Lock()
		d.maxSession = time.AfterFunc(max, func() { d.Close(core.ErrnoSessionTooOld) })
		d.mu.Unlock()
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
	if err := d.srv.router.SetStatus(d.session, p, apps); err != nil {
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
	ignored, err := d.srv.router.SetVisibility(context.Background(), d.session, req.AppIDs)
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
	if err := d.srv.router.Ack(context.Background(), d.session, req.IDs); err != nil {
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
	ns, err := d.srv.router.PendingNotifications(context.Background(), d.session)
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
		return websocket.CloseNormalClosure
	case core.ErrnoShuttingDown:
		return websocket.CloseGoingAway
	case core.ErrnoSlowConsumer:
		return websocket.CloseTryAgainLater
	}
	return websocket.ClosePolicyViolation
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

// itoa is strconv.Itoa, named for the headers.
func itoa(n int) string { return strconv.Itoa(n) }
