package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"os"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// The soak's devices: each runs in one goroutine, connecting, holding a
// session for a random time (status updates, notification pushes acked as
// they come), leaving cleanly or abruptly, and coming back inside the
// disconnect grace or after it, until the load stops. A session waits on
// read deadlines, not timers: one goroutine per device is all it costs.

// soakMarker starts every notification message the soak sends: the number
// after it is the notification's ledger key.
const soakMarker = "soak#"

// ledger follows every notification the apps send from request to ack:
// the figures that show none was lost however the devices flapped.
type ledger struct {
	mu    sync.Mutex // guards: state
	state map[int64]uint8
}

// A notification's states in the ledger, set in any order (a push may
// overtake the app's answer).
const (
	nSent      = 1 << iota // the request was written
	nStored                // the app got "OK" (a receipt over XMPP)
	nRefused               // the app got an error for it
	nDelivered             // a device got it pushed
	nAckSent               // a device sent an ack of it
	nAcked                 // a device's ack of it was answered true
)

func (l *ledger) mark(seqs []int64, bit uint8) {
	l.mu.Lock()
	if l.state == nil {
		l.state = map[int64]uint8{}
	}
	for _, s := range seqs {
		l.state[s] |= bit
	}
	l.mu.Unlock()
}

// notifTally is what the ledger says at the end of a soak.
type notifTally struct {
	Sent              int64 `json:"sent"`
	Stored            int64 `json:"stored"`
	Refused           int64 `json:"refused"`
	Delivered         int64 `json:"delivered"`              // distinct notifications pushed to at least one device
	Acked             int64 `json:"acked"`                  // distinct notifications whose ack was answered true
	Pushes            int64 `json:"pushes"`                 // pushes received, repeats included
	StoredUndelivered int64 `json:"stored_never_delivered"` // a loss
	StoredUnacked     int64 `json:"stored_never_acked"`
	DeliveredUnknown  int64 `json:"delivered_without_answer"` // pushed, but its app's answer was lost with the app's connection
}

func (l *ledger) tally() notifTally {
	l.mu.Lock()
	defer l.mu.Unlock()
	var t notifTally
	for _, s := range l.state {
		if s&nSent != 0 {
			t.Sent++
		}
		if s&nStored != 0 {
			t.Stored++
		}
		if s&nRefused != 0 {
			t.Refused++
		}
		if s&nDelivered != 0 {
			t.Delivered++
		}
		if s&nAcked != 0 {
			t.Acked++
		}
		if s&nStored != 0 && s&nDelivered == 0 {
			t.StoredUndelivered++
		}
		// An ack sent by a device that left before its answer came may
		// well have been taken; if not, the drain gets it again.
		if s&nStored != 0 && s&(nAcked|nAckSent) == 0 {
			t.StoredUnacked++
		}
		if s&nDelivered != 0 && s&(nStored|nRefused) == 0 {
			t.DeliveredUnknown++
		}
	}
	return t
}

// pendingReq is a request of a device awaiting its answer: answers come in
// order, so a FIFO pairs them.
type pendingReq struct {
	ack  bool
	seqs []int64 // an ack's notifications
}

// soakSession is one connected device.
type soakSession struct {
	r    *soakRun
	d    *device
	pend []pendingReq
	buf  []byte
}

// runDevice flaps one device until the load stops.
func (r *soakRun) runDevice(ctx context.Context, u userCred, deviceID string, startDelay time.Duration) {
	if !sleepCtx(ctx, startDelay) {
		return
	}
	var left time.Time // when the last session ended; zero before the first
	backoff := time.Second
	for ctx.Err() == nil && now() < r.stopAt {
		// At most -conc connects in flight: a refused or slow connect is
		// retried after a growing, jittered pause, as a real client does,
		// so an overloaded server is not met with a storm of retries.
		select {
		case r.dials <- struct{}{}:
		case <-ctx.Done():
			return
		}
		d, err := connectDevice(ctx, r.t.d, u.Assertion, r.appIDs, deviceID)
		<-r.dials
		if err != nil && ctx.Err() != nil {
			return // the load stopped during the connect: not the server's doing
		}
		if err != nil {
			r.connectFailed(err)
			sleepCtx(ctx, backoff/2+rand.N(backoff))
			backoff = min(2*backoff, 30*time.Second)
			continue
		}
		backoff = time.Second
		r.connects.Add(1)
		if !left.IsZero() {
			if time.Since(left) < r.o.grace {
				r.within.Add(1)
			} else {
				r.after.Add(1)
			}
		}
		r.connected.Add(1)
		s := &soakSession{r: r, d: d}
		ok := s.hold(ctx, time.Now().Add(randDur(r.o.sessionMin, r.o.sessionMax)))
		r.connected.Add(-1)
		left = time.Now()
		if !ok {
			sleepCtx(ctx, time.Second)
			continue
		}
		// Away for a while: inside the grace the server tells no app
		// anything; past it the apps see offline, then online again.
		away := r.o.grace + randDur(0, r.o.longOffline)
		if rand.Float64() < r.o.withinGrace {
			away = randDur(0, r.o.grace/2)
		}
		sleepCtx(ctx, away)
	}
}

// hold runs a session until end (or the load stops), then leaves cleanly
// or abruptly. It reports false when the server ended the session first.
func (s *soakSession) hold(ctx context.Context, end time.Time) bool {
	r, c := s.r, s.d.conn
	stop := r.timeOf(r.stopAt)
	if stop.Before(end) {
		end = stop
	}
	nextStatus := time.Now().Add(randDur(0, 2*r.o.statusEvery))
	for {
		t := time.Now()
		if !t.Before(end) || ctx.Err() != nil {
			break
		}
		if !t.Before(nextStatus) {
			if err := s.sendStatus(); err != nil {
				r.devErrs.add("session write: " + errKind(err))
				c.Close()
				return false
			}
			nextStatus = t.Add(randDur(r.o.statusEvery/2, 3*r.o.statusEvery/2))
		}
		c.SetReadDeadline(minTime(end, nextStatus, t.Add(2*time.Second)))
		_, frame, err := c.ReadMessage()
		if errors.Is(err, os.ErrDeadlineExceeded) {
			continue
		}
		if err != nil {
			r.unexpected.Add(1)
			r.devErrs.add("session closed by server: " + errKind(err))
			c.Close()
			return false
		}
		if err := s.handle(frame); err != nil {
			r.devErrs.add("session write: " + errKind(err))
			c.Close()
			return false
		}
	}
	s.leave(rand.Float64() < r.o.abrupt)
	return true
}

// handle reads one frame: an answer pairs with the oldest pending request;
// a pushed notification is recorded and acked at once.
func (s *soakSession) handle(frame []byte) error {
	r := s.r
	isAnswer, aerr := classify(frame)
	if isAnswer {
		if len(s.pend) == 0 {
			r.devErrs.add("answer to no request")
			return nil
		}
		p := s.pend[0]
		s.pend = s.pend[1:]
		if aerr != nil {
			r.devErrs.add("answer: " + errKind(aerr))
			return nil
		}
		if p.ack {
			r.acksOK.Add(1)
			r.ledger.mark(p.seqs, nAcked)
		} else {
			r.statusOK.Add(1)
		}
		return nil
	}
	var push struct {
		Type    string `json:"type"`
		ID      string `json:"id"`
		Message string `json:"message"`
	}
	if err := json.Unmarshal(frame, &push); err != nil || push.Type != "notification" || push.ID == "" {
		r.devErrs.add("unexpected pushed frame")
		return nil
	}
	r.pushes.Add(1)
	var seqs []int64
	if seq, ok := parseSoakSeq(push.Message); ok {
		seqs = []int64{seq}
		r.ledger.mark(seqs, nDelivered)
	}
	b := append(s.buf[:0], `{"type":"ack","session_id":"`...)
	b = append(b, s.d.session...)
	b = append(b, `","ids":[`...)
	b = appendJSONString(b, push.ID)
	b = append(b, "]}"...)
	s.buf = b
	s.pend = append(s.pend, pendingReq{ack: true, seqs: seqs})
	r.ledger.mark(seqs, nAckSent)
	r.acksSent.Add(1)
	return s.write(b)
}

func (s *soakSession) sendStatus() error {
	status := "online"
	if rand.N(3) == 0 {
		status = "unavailable"
	}
	b := append(s.buf[:0], `{"type":"status","session_id":"`...)
	b = append(b, s.d.session...)
	b = append(b, `","status":"`...)
	b = append(b, status...)
	b = append(b, `","message":"soak `...)
	b = strconv.AppendInt(b, rand.Int64N(1000), 10)
	b = append(b, `"}`...)
	s.buf = b
	s.pend = append(s.pend, pendingReq{})
	s.r.statusSent.Add(1)
	return s.write(b)
}

func (s *soakSession) write(b []byte) error {
	s.d.conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
	return s.d.conn.WriteText(b)
}

// leave ends the session. Cleanly: sometimes an offline status first, then
// a close frame, waiting (briefly) for the server's. Abruptly: a reset, as
// a phone that loses its network does.
func (s *soakSession) leave(abrupt bool) {
	r, c := s.r, s.d.conn
	if abrupt {
		r.abruptLeaves.Add(1)
		c.nc.SetLinger(0)
		c.Close()
		return
	}
	r.cleanLeaves.Add(1)
	c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if rand.N(2) == 0 {
		b := append(s.buf[:0], `{"type":"status","session_id":"`...)
		b = append(b, s.d.session...)
		b = append(b, `","status":"offline"}`...)
		c.WriteText(b)
	}
	c.writeFrame(wsClose, []byte{0x03, 0xE8}) // 1000, normal closure
	c.SetReadDeadline(time.Now().Add(time.Second))
	for range 1000 {
		if _, _, err := c.ReadMessage(); err != nil {
			break
		}
	}
	c.Close()
}

// drainUser connects one more device of u once the load has stopped and
// takes whatever is still queued for it, acking it, until the server has
// been quiet for quiet: every notification stored must reach a device.
func (r *soakRun) drainUser(ctx context.Context, u userCred, quiet time.Duration) {
	d, err := connectDevice(ctx, r.t.d, u.Assertion, r.appIDs, "soak-drain")
	if err != nil {
		r.connectFailed(err)
		return
	}
	s := &soakSession{r: r, d: d}
	defer d.conn.Close()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		d.conn.SetReadDeadline(time.Now().Add(quiet))
		_, frame, err := d.conn.ReadMessage()
		if errors.Is(err, os.ErrDeadlineExceeded) {
			if len(s.pend) == 0 {
				break
			}
			continue
		}
		if err != nil {
			r.unexpected.Add(1)
			r.devErrs.add("drain closed by server: " + errKind(err))
			return
		}
		if err := s.handle(frame); err != nil {
			r.devErrs.add("drain write: " + errKind(err))
			return
		}
	}
	s.leave(false)
}

// connectFailed counts a failed connect, and says once, plainly, when it
// failed because this process ran out of file descriptors.
func (r *soakRun) connectFailed(err error) {
	r.devErrs.add("connect: " + errKind(err))
	if errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) {
		r.emfile.Do(func() {
			r.prog.logf("this tool hit its open-file limit (EMFILE) with %d devices connected: lower -devices, or raise ulimit -n (the machine's hard limit is %d)",
				r.connected.Load(), r.fdLimit)
		})
	}
}

func parseSoakSeq(msg string) (int64, bool) {
	i := bytes.Index([]byte(msg), []byte(soakMarker))
	if i < 0 {
		return 0, false
	}
	v, err := strconv.ParseInt(msg[i+len(soakMarker):], 10, 64)
	return v, err == nil
}

func randDur(lo, hi time.Duration) time.Duration {
	if hi <= lo {
		return lo
	}
	return lo + rand.N(hi-lo)
}

func minTime(a time.Time, bs ...time.Time) time.Time {
	for _, b := range bs {
		if b.Before(a) {
			a = b
		}
	}
	return a
}

// sleepCtx waits d, or less if ctx ends; it reports whether ctx is alive.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
