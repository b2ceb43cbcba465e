package ws

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"math"
	"strconv"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/presence-service/presence/core"
)

// Bounds on the notification batches of one app channel that are accepted
// and not yet answered on the socket (docs/decisions.md). Past either, a
// batch is refused at once with errno 29 and retry_after: the reader never
// waits for the store, so probes and pings are served meanwhile, and an
// app that does not read its answers cannot make the server hold more.
const (
	appMaxInFlight      = 256
	appMaxInFlightBytes = 8 << 20 // frame bytes
)

// appAnswerWrite is about how many bytes of answers the channel's writer
// puts in one write.
const appAnswerWrite = 64 << 10

// appendTextFrame appends a final, unmasked text frame (RFC 6455 §5.2), as
// a server sends it.
func appendTextFrame(b, payload []byte) []byte {
	b = append(b, 0x81)
	switch n := len(payload); {
	case n <= 125:
		b = append(b, byte(n))
	case n <= 0xFFFF:
		b = append(b, 126, byte(n>>8), byte(n))
	default:
		b = append(b, 127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	return append(b, payload...)
}

// appKeptReadBuffer is the largest read buffer a channel keeps between
// frames; a larger frame's buffer is left to the garbage collector.
const appKeptReadBuffer = 64 << 10

// readAppFrame reads the next message of the channel into buf's storage,
// grown as needed: a channel that sends batches reads them without a new
// buffer, grown step by step, for each.
func readAppFrame(c *websocket.Conn, buf []byte) ([]byte, error) {
	_, r, err := c.NextReader()
	if err != nil {
		return nil, err
	}
	buf = buf[:0]
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return nil, err
		}
	}
}

// appNotifyTimeout bounds one batch's wait for the store.
const appNotifyTimeout = 30 * time.Second

// appChannelReadLimit is the largest frame an app may send on its channel:
// a notification batch as large as a POST's body, with room for its type
// and id.
const appChannelReadLimit = maxNotifyBody + 1024

// appAnswers carries the answers of stored (or refused) batches from the
// goroutines that wait for the store to the channel's writer, which is the
// only goroutine that writes to the socket. A batch holds its place in the
// in-flight bound until its answer is written.
type appAnswers struct {
	mu       sync.Mutex // guards: frames, inFlight, bytes, closing
	frames   []appAnswer
	inFlight int
	bytes    int
	closing  core.Errno // non-zero once the channel is closing: no batch is admitted

	ready chan struct{} // buffered 1: frames is not empty
	batch sync.WaitGroup
}

// appAnswer is one answer and the frame bytes its batch counted.
type appAnswer struct {
	frame []byte
	size  int
}

func newAppAnswers() *appAnswers { return &appAnswers{ready: make(chan struct{}, 1)} }

// admit takes a place for a batch of size frame bytes. It refuses with
// the channel's close errno once the channel is closing, and with errno 29
// past the bounds.
func (a *appAnswers) admit(size int) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closing != 0 {
		return core.Errorf(a.closing, "%s: send the batch again on a new channel", a.closing.DefaultReason())
	}
	if a.inFlight >= appMaxInFlight || a.bytes+size > appMaxInFlightBytes {
		return core.Errorf(core.ErrnoRateLimited, "slow down: %d notification batches or %d MiB already in flight on this channel",
			appMaxInFlight, appMaxInFlightBytes>>20)
	}
	a.inFlight++
	a.bytes += size
	return nil
}

// close admits no more batches: the channel is closing with errno.
func (a *appAnswers) close(errno core.Errno) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.closing = errno
}

// push queues an admitted batch's answer for the writer.
func (a *appAnswers) push(frame []byte, size int) {
	a.mu.Lock()
	a.frames = append(a.frames, appAnswer{frame, size})
	a.mu.Unlock()
	select {
	case a.ready <- struct{}{}:
	default:
	}
}

// take moves the queued answers into buf (emptied first).
func (a *appAnswers) take(buf []appAnswer) []appAnswer {
	a.mu.Lock()
	defer a.mu.Unlock()
	buf = append(buf[:0], a.frames...)
	clear(a.frames)
	a.frames = a.frames[:0]
	return buf
}

// written gives back the places of answers the writer has written.
func (a *appAnswers) written(done []appAnswer) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, d := range done {
		a.inFlight--
		a.bytes -= d.size
	}
}

// idle reports whether no batch is in flight.
func (a *appAnswers) idle() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.inFlight == 0
}

// notifyOnChannel handles a notification frame of app (PROTOCOL §3): the
// same checks, rate limit and store as a POST (§4). It returns an answer
// to write at once for a batch refused before the store; otherwise it
// returns nil, and a goroutine waits for the store's commit and queues
// the answer.
func (s *Server) notifyOnChannel(app core.AppID, ch *appChannel, req appRequest, size int) []byte {
	if req.err != nil {
		return s.channelNotifyFailed(req, req.err, 0)
	}
	if err := ch.answers.admit(size); err != nil {
		return s.channelNotifyFailed(req, err, time.Second)
	}
	if ok, wait := s.router.NotifyLimiter(app).Allow(time.Now(), len(req.items)); !ok {
		ch.answers.written([]appAnswer{{size: size}})
		return s.channelNotifyFailed(req, core.Errorf(core.ErrnoRateLimited, "slow down: notifications_per_minute reached"), wait)
	}
	ctx := ch.batchContext(time.Now())
	ch.answers.batch.Add(1)
	go func() {
		defer ch.answers.batch.Done()
		_, sizes, err := s.router.Notify(ctx, app, req.items)
		var answer []byte
		if err != nil {
			answer = s.channelNotifyFailed(req, err, 0)
		} else {
			answer = appendNotifyOK(req, sizes)
		}
		ch.answers.push(answer, size)
	}()
	return nil
}

// batchContext is what a batch admitted at now waits for the store under:
// it ends appNotifyTimeout after the first batch of the second the batch
// came in, and not when the app leaves (a commit under way finishes, as a
// POST's does). One context serves a second of batches, because a timer
// for each batch showed in profiles of single items (docs/decisions.md).
// Only the reader calls it.
func (ch *appChannel) batchContext(now time.Time) context.Context {
	if ch.batchCtx == nil || now.Sub(ch.batchCtxAt) >= time.Second {
		ch.batchCtx, ch.batchCancel = context.WithDeadline(context.Background(), now.Add(appNotifyTimeout))
		ch.batchCtxAt = now
	}
	return ch.batchCtx
}

// appendNotifyOK is the answer to a stored batch: each item's PUID and
// queue size, as a POST's 200 body has them.
func appendNotifyOK(req appRequest, sizes []int) []byte {
	b := make([]byte, 0, 64+len(req.id)+len(req.items)*(len(req.items[0].PUID)+28))
	b = appendNotifyHead(b, req)
	b = append(b, `"result":"OK","queue_size":`...)
	b = strconv.AppendInt(b, int64(sizes[len(sizes)-1]), 10)
	b = append(b, `,"results":[`...)
	for i, it := range req.items {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"UID":`...)
		b = appendString(b, it.PUID)
		b = append(b, `,"queue_size":`...)
		b = strconv.AppendInt(b, int64(sizes[i]), 10)
		b = append(b, '}')
	}
	return append(b, "]}"...)
}

// appendNotifyHead opens an answer with its type and, when it can be
// echoed, the batch's id.
func appendNotifyHead(b []byte, req appRequest) []byte {
	b = append(b, `{"type":"notification",`...)
	if req.echo {
		b = append(b, `"id":`...)
		b = appendString(b, req.id)
		b = append(b, ',')
	}
	return b
}

// channelNotifyFailed is the error answer of a batch: errno, reason, the
// bad item's index when one is named, and retry_after (whole seconds, at
// least 1) for errno 29.
func (s *Server) channelNotifyFailed(req appRequest, err error, retryAfter time.Duration) []byte {
	errno := core.ErrnoOf(err)
	s.router.Metrics.CountError(errno)
	if errno == core.ErrnoInternal {
		s.log.Error("notification on the app channel", "err", err)
	}
	b := appendNotifyHead(nil, req)
	b = append(b, `"result":"error","errno":`...)
	b = strconv.AppendInt(b, int64(errno), 10)
	b = append(b, `,"reason":`...)
	b = appendString(b, core.ReasonOf(err))
	var ie *core.ItemError
	if errors.As(err, &ie) {
		b = append(b, `,"index":`...)
		b = strconv.AppendInt(b, int64(ie.Index), 10)
	}
	if errno == core.ErrnoRateLimited {
		b = append(b, `,"retry_after":`...)
		b = strconv.AppendInt(b, int64(max(1, math.Ceil(retryAfter.Seconds()))), 10)
	}
	return append(b, '}')
}
