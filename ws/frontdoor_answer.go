package ws

import (
	"context"
	"net/http"
	"runtime/debug"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// postAnswer is the answer to a front-door connection's request in
// flight: the store's goroutine writes it (finish), or the sweeper does
// when the store has not answered in time (answerOverdue), whichever
// comes first; the serving goroutine waits for it (awaitAnswer) before
// the next request.
type postAnswer struct {
	answered chan struct{} // a token once the request in flight is answered
	inflight bool          // the serving goroutine's: a request handed, its token not taken
	seq      uint64        // the serving goroutine's: its last request

	mu        sync.Mutex
	waiting   uint64    // the request not yet answered; 0: none
	since     time.Time // when it began
	lastReply bool      // its answer says Connection: close

	out []byte // the answer being written; the writer's until the token
}

// answerTimeout is when a request the store has not answered gets the
// answer of a store that timed out. The store skips a job whose context
// (notifyTimeout, and up to a second more: sharedDeadline) ended while it
// was queued and answers that itself; this is for a store stuck in one
// write. The sweeper looks once a second (Server.sweep), as it does for
// devices, instead of a timer per request.
//
// A variable, for a test to shorten (SetAnswerTimeout).
var answerTimeout atomic.Int64

func init() { answerTimeout.Store(int64(notifyTimeout + 2*time.Second)) }

// begin records a request handed to the store at now and returns its
// number for finish.
func (pc *postConn) begin(now time.Time, lastReply bool) uint64 {
	pc.seq++
	pc.mu.Lock()
	pc.waiting, pc.since, pc.lastReply = pc.seq, now, lastReply
	pc.mu.Unlock()
	pc.inflight = true
	return pc.seq
}

// answerIfOverdue answers the request in flight if the store has kept it
// answerTimeout or longer by now.
func (pc *postConn) answerIfOverdue(now time.Time) {
	pc.mu.Lock()
	seq := pc.waiting
	late := seq != 0 && now.Sub(pc.since) >= time.Duration(answerTimeout.Load())
	pc.mu.Unlock()
	if late {
		pc.finish(seq, pc.fd.s.notifyFailed(context.DeadlineExceeded))
	}
}

// finish writes a, the answer to request seq, unless that was answered
// already. It never waits for the socket: what the socket does not take
// at once is left to a goroutine (the caller may be the store's, which
// answers a whole commit).
func (pc *postConn) finish(seq uint64, a notifyAnswer) {
	pc.mu.Lock()
	if pc.waiting != seq {
		pc.mu.Unlock()
		return
	}
	pc.waiting = 0
	lastReply := pc.lastReply
	pc.mu.Unlock()
	given := false
	defer func() {
		if p := recover(); p != nil {
			pc.fd.s.log.Error("panic answering a notification POST", "err", p, "stack", string(debug.Stack()))
			if !given {
				pc.done(false)
			}
		}
	}()
	b := appendAnswer(pc.out[:0], a, lastReply, time.Now())
	pc.out = b
	for pc.raw != nil && len(b) > 0 {
		n, err := writeNow(pc.raw, b)
		b = b[n:]
		if err == errWouldBlock {
			break
		}
		if err != nil {
			given = true
			pc.done(false)
			return
		}
	}
	given = true
	if len(b) == 0 {
		pc.done(true)
		return
	}
	go pc.writeRest(b)
}

// writeRest writes what the socket did not take at once.
func (pc *postConn) writeRest(b []byte) {
	pc.nc.SetWriteDeadline(time.Now().Add(writeWait))
	_, err := pc.nc.Write(b)
	pc.done(err == nil)
}

// done gives the serving goroutine its token: the request is answered
// (written, or not: then the connection is closed, and its reading ends).
func (pc *postConn) done(written bool) {
	if !written {
		pc.nc.Close()
		select {
		case pc.closed <- struct{}{}: // wakes the goroutine if the connection is parked
		default:
		}
	} else if !pc.fd.s.posts.setBusy(pc, false) {
		pc.nc.SetReadDeadline(time.Now()) // shutting down: the idle reader wakes and ends
	}
	pc.answered <- struct{}{}
}

// awaitAnswer waits until the request in flight, if any, is answered.
func (pc *postConn) awaitAnswer() {
	if pc.inflight {
		<-pc.answered
		pc.inflight = false
	}
}

// appendAnswer appends a to b as net/http would frame it.
func appendAnswer(b []byte, a notifyAnswer, lastReply bool, now time.Time) []byte {
	b = append(b, "HTTP/1.1 "...)
	b = strconv.AppendInt(b, int64(a.status), 10)
	b = append(b, ' ')
	b = append(b, http.StatusText(a.status)...)
	b = append(b, "\r\nContent-Type: application/json\r\n"...)
	if a.retryAfter > 0 {
		b = append(b, "Retry-After: "...)
		b = strconv.AppendInt(b, int64(a.retryAfter), 10)
		b = append(b, "\r\n"...)
	}
	if lastReply {
		b = append(b, "Connection: close\r\n"...)
	}
	b = append(b, "Date: "...)
	b = now.UTC().AppendFormat(b, http.TimeFormat)
	b = append(b, "\r\nContent-Length: "...)
	b = strconv.AppendInt(b, int64(len(a.body)), 10)
	b = append(b, "\r\n\r\n"...)
	return append(b, a.body...)
}
