package ws

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"runtime"
	"time"

	"github.com/gorilla/websocket"

	"github.com/presence-service/presence/core"
)

// keyWait bounds how long an app may take to send its key.
const keyWait = 10 * time.Second

// appChannel is one WebSocket of an app. Status updates wait in a
// coalescing outbox (newest per PUID); a writer goroutine turns whatever
// is pending into one JSON array. It is the only goroutine that writes
// frames: the reader hands it answers through extra, the goroutines that
// wait for a notification batch's commit through answers.
type appChannel struct {
	ws      *websocket.Conn
	outbox  *core.StatusOutbox
	extra   chan []byte     // answers of the reader, written between arrays
	answers *appAnswers     // answers of notification batches
	closed  chan core.Errno // router asked to close; buffered 1
	wbuf    []byte          // the writer's: answers framed for one write

	// The reader's: the context of the batches it admits (batchContext).
	batchCtx    context.Context
	batchCancel context.CancelFunc
	batchCtxAt  time.Time
}

func parseAppID(r *http.Request) (core.AppID, bool) {
	return core.ParseAppID(r.PathValue("app_id"))
}

func (s *Server) serveApp(w http.ResponseWriter, r *http.Request) {
	id, ok := parseAppID(r)
	if !ok {
		http.NotFound(w, r)
		return
	}
	if _, err := s.router.App(r.Context(), id); err != nil {
		if core.ErrnoOf(err) == core.ErrnoUnknownUID {
			http.NotFound(w, r)
		} else {
			http.Error(w, "internal error", http.StatusInternalServerError)
		}
		return
	}
	c, err := s.upgrader.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	s.conns.Add(1)
	defer s.conns.Done()
	defer c.Close()
	// Before its key an app sends one small frame: an unknown caller does
	// not get to make the server read a batch-sized one.
	c.SetReadLimit(int64(s.cfg.Limits.MaxFrameBytes) * 16)

	// The key comes first.
	c.SetReadDeadline(time.Now().Add(keyWait))
	_, data, err := c.ReadMessage()
	if err != nil {
		return
	}
	var hello struct {
		Key string `json:"key"`
	}
	if json.Unmarshal(data, &hello) != nil || hello.Key == "" {
		s.refuseApp(c, core.Errorf(core.ErrnoBadKey, "first frame must be {\"key\": \"<api key>\"}"))
		return
	}
	app, err := s.router.AuthenticateAppFrom(r.Context(), id, hello.Key, r.RemoteAddr)
	if err != nil {
		s.refuseApp(c, err)
		return
	}
	c.SetReadLimit(appChannelReadLimit)
	// Attached before the key is answered: an app that has its
	// {"result":true} gets every update published after it. (Answered
	// first, an update routed in between went to the app's other
	// channels only.) What the attach queues waits in the outbox until
	// the writer starts, after the answer.
	ch := &appChannel{ws: c, outbox: core.NewStatusOutbox(), extra: make(chan []byte, 16), answers: newAppAnswers(), closed: make(chan core.Errno, 1)}
	detach, err := s.router.AttachApp(r.Context(), id, ch, core.AttachOptions{KeyHash: app.KeyHash})
	if err != nil {
		s.refuseApp(c, err)
		return
	}
	c.SetWriteDeadline(time.Now().Add(writeWait))
	if err := c.WriteMessage(websocket.TextMessage, resultTrue); err != nil {
		detach()
		s.router.Requeue(id, ch.outbox.Take(nil))
		return
	}
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		s.readApp(id, ch)
	}()
	ch.write(readerDone, s.cfg.Device.IdleTimeout.Duration)
	c.Close()
	<-readerDone
	ch.answers.batch.Wait() // no batch outlives its channel's handler: shutdown waits for it
	if ch.batchCancel != nil {
		ch.batchCancel() // earlier contexts end on their own deadline
	}
	detach()
	s.router.Requeue(id, ch.outbox.Take(nil)) // what the app never got waits for its next channel
}

func (s *Server) refuseApp(c *websocket.Conn, err error) {
	errno := core.ErrnoOf(err)
	s.router.Metrics.CountError(errno)
	c.SetWriteDeadline(time.Now().Add(writeWait))
	c.WriteMessage(websocket.TextMessage, appendError(nil, errno, core.ReasonOf(err), core.RetryAfterOf(err)))
	c.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.ClosePolicyViolation, core.ReasonOf(err)), time.Now().Add(time.Second))
}

// write is the channel's only writer: arrays of pending updates, the
// reader's answers, notification answers, pings, and the close frame.
// Asked to close, it admits no new batch, writes the answers of the
// batches in flight (for up to writeWait: they are stored, and the app
// should hear so), then the close frame.
func (ch *appChannel) write(readerDone <-chan struct{}, idle time.Duration) {
	ping := time.NewTicker(idle / 2)
	defer ping.Stop()
	var buf []byte
	var pending []core.StatusUpdate
	var answers []appAnswer
	closed := ch.closed
	var closeErrno core.Errno
	var drained <-chan time.Time // set once asked to close
	for {
		if drained != nil && ch.answers.idle() {
			ch.writeClose(closeErrno)
			return
		}
		select {
		case <-readerDone:
			return
		case closeErrno = <-closed:
			ch.answers.close(closeErrno)
			closed, drained = nil, time.After(writeWait)
		case <-drained:
			ch.writeClose(closeErrno)
			return
		case frame := <-ch.extra:
			ch.ws.SetWriteDeadline(time.Now().Add(writeWait))
			if ch.ws.WriteMessage(websocket.TextMessage, frame) != nil {
				return
			}
		case <-ch.answers.ready:
			// The batches of one commit are answered at once, each by its
			// own goroutine: let the others queue theirs before taking,
			// so that they share a write.
			runtime.Gosched()
			answers = ch.answers.take(answers)
			if !ch.writeAnswers(answers) {
				return
			}
			ch.answers.written(answers)
		case <-ch.outbox.Ready():
			pending = ch.outbox.Take(pending[:0])
			if len(pending) == 0 {
				continue
			}
			buf = append(buf[:0], '[')
			for i, u := range pending {
				if i > 0 {
					buf = append(buf, ',')
				}
				buf = appendUpdate(buf, u)
			}
			buf = append(buf, ']')
			ch.ws.SetWriteDeadline(time.Now().Add(writeWait))
			if ch.ws.WriteMessage(websocket.TextMessage, buf) != nil {
				return
			}
		case <-ping.C:
			if ch.ws.WriteControl(websocket.PingMessage, nil, time.Now().Add(writeWait)) != nil {
				return
			}
		}
	}
}

// writeAnswers writes notification answers, as many frames in one write
// as fit in appAnswerWrite: a write to a socket costs more than the bytes
// it carries, and a busy channel has many answers ready at once. The
// frames go to the socket beside gorilla (RFC 6455 frames from the server
// are plain header and payload): this goroutine writes everything else
// through gorilla, and what the reader's gorilla writes (a pong, a close
// for a protocol error) is one Write call, which net.Conn keeps whole
// against this one's.
func (ch *appChannel) writeAnswers(answers []appAnswer) bool {
	nc := ch.ws.NetConn()
	nc.SetWriteDeadline(time.Now().Add(writeWait))
	buf := ch.wbuf[:0]
	for i, a := range answers {
		buf = appendTextFrame(buf, a.frame)
		if len(buf) >= appAnswerWrite || i == len(answers)-1 {
			if _, err := nc.Write(buf); err != nil {
				return false
			}
			buf = buf[:0]
		}
	}
	if cap(buf) <= 2*appAnswerWrite { // an unusually large answer is not kept
		ch.wbuf = buf
	}
	return true
}

// writeClose ends the channel as the router asked: 1001 (going away) when
// the server shuts down, as for devices; 1008 (policy) for a key that is
// no longer good.
func (ch *appChannel) writeClose(errno core.Errno) {
	code := websocket.ClosePolicyViolation
	if errno == core.ErrnoShuttingDown {
		code = websocket.CloseGoingAway
	}
	ch.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, errno.DefaultReason()), time.Now().Add(time.Second))
}

// readApp handles what the app sends: probes and notification batches.
// It never waits for the store: a batch's answer is queued by the
// goroutine that waits for its commit.
func (s *Server) readApp(id core.AppID, ch *appChannel) {
	idle := s.cfg.Device.IdleTimeout.Duration
	c := ch.ws
	c.SetReadDeadline(time.Now().Add(idle))
	c.SetPongHandler(func(string) error { return c.SetReadDeadline(time.Now().Add(idle)) })
	var buf []byte
	for {
		data, err := readAppFrame(c, buf)
		if err != nil {
			return
		}
		if cap(data) <= appKeptReadBuffer {
			buf = data // decoding copies what it keeps: the buffer is free again
		}
		c.SetReadDeadline(time.Now().Add(idle))
		var answer []byte
		req, err := decodeAppFrame(data)
		switch {
		case err != nil:
			answer = appendError(nil, core.ErrnoNotObject, "frame is not a JSON object of the app channel", 0)
		case req.kind == "notification":
			answer = s.notifyOnChannel(id, ch, req, len(data))
		case req.kind == "probe":
			answer = s.probe(id, req.uids)
		default:
			answer = appendError(nil, core.ErrnoUnknownType, "unknown type: the app channel takes probe", 0)
		}
		if answer == nil {
			continue
		}
		select {
		case ch.extra <- answer:
		case <-time.After(writeWait):
			return // the writer is stuck: the app does not read
		}
	}
}

func (s *Server) probe(id core.AppID, uids []string) []byte {
	if len(uids) == 0 {
		return appendError(nil, core.ErrnoInvalidField, "UIDs: want a non-empty array", 0)
	}
	ctx, cancel := context.WithTimeout(context.Background(), writeWait)
	defer cancel()
	results, err := s.router.Probe(ctx, id, uids)
	if err != nil {
		var e *core.Error
		if !errors.As(err, &e) {
			s.log.Error("probe", "app", id, "err", err)
		}
		return appendError(nil, core.ErrnoOf(err), core.ReasonOf(err), 0)
	}
	b := []byte{'['}
	for i, r := range results {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendUpdate(b, r.StatusUpdate)
		if !r.Known {
			b = append(b[:len(b)-1], `,"error":"unknown UID"}`...)
		}
	}
	return append(b, ']')
}

// SendStatus implements core.AppSink.
func (ch *appChannel) SendStatus(u core.StatusUpdate) { ch.outbox.Push(u) }

// Close implements core.AppSink.
func (ch *appChannel) Close(errno core.Errno) {
	select {
	case ch.closed <- errno:
	default:
	}
}

var _ core.AppSink = (*appChannel)(nil)
