package ws

import (
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// gorillaConn is a device's connection read by a goroutine of its own and
// written by another, through gorilla/websocket: the transport for TLS
// (epoll cannot see TLS records), for systems without epoll, and for the
// upgrades the front door leaves to net/http. Only the writer goroutine
// writes data; gorilla lets pongs and close echoes be written beside it.
type gorillaConn struct {
	ws   *websocket.Conn
	d    *device       // set before the connection is served
	wake chan struct{} // a token when the queue has frames
	done chan struct{} // closed when the connection has ended

	mu      sync.Mutex // guards: queue, full, closing
	queue   []outFrame
	full    bool // the queue overflowed: only the close is taken
	closing bool // a close is queued: nothing more is

	lastRead atomic.Int64
	dropped  atomic.Bool // Drop ran: the sweeper calls it at each turn until the reader ends
	ended    sync.Once
}

// outFrame is a frame waiting for the writer.
type outFrame struct {
	op      int // websocket.TextMessage, PingMessage or CloseMessage
	payload []byte
}

// lingerTime bounds how long a connection the server closed first waits
// for the peer's close.
const lingerTime = 2 * time.Second

// deviceUpgrader answers the upgrades of gorillaConn's devices.
var deviceUpgrader = websocket.Upgrader{
	ReadBufferSize:  1024,
	WriteBufferSize: 1024,
	WriteBufferPool: &sync.Pool{}, // an idle device holds no write buffer
	// Devices are browsers on any origin and native apps; the channel is
	// authenticated by its assertion, not by cookies.
	CheckOrigin: func(*http.Request) bool { return true },
	Error: func(w http.ResponseWriter, _ *http.Request, status int, _ error) {
		w.Header().Set("Sec-WebSocket-Version", "13")
		http.Error(w, "this is a WebSocket endpoint: send a version 13 opening handshake", status)
	},
}

// serveDevice is GET /presence through net/http: devices the front door
// did not take, each served by a gorillaConn until its connection ends.
func (s *Server) serveDevice(w http.ResponseWriter, r *http.Request) {
	if s.router.ShuttingDown() {
		http.Error(w, "shutting down", http.StatusServiceUnavailable)
		return
	}
	c, err := deviceUpgrader.Upgrade(w, r, nil)
	if err != nil {
		return // answered
	}
	c.SetReadLimit(int64(s.cfg.Limits.MaxFrameBytes)) // past it gorilla closes with 1009
	g := &gorillaConn{ws: c, wake: make(chan struct{}, 1), done: make(chan struct{})}
	g.lastRead.Store(time.Now().UnixNano())
	d := s.newDevice(g)
	g.d = d
	s.track(d)
	defer g.ended.Do(func() {
		close(g.done)
		c.Close()
		d.Closed()
	})
	go g.write()
	c.SetPongHandler(func(string) error { g.lastRead.Store(time.Now().UnixNano()); return nil })
	for {
		op, p, err := c.ReadMessage()
		if err != nil {
			return // the peer closed, or End, or the linger after our close ran out
		}
		g.lastRead.Store(time.Now().UnixNano())
		d.Message(op == websocket.TextMessage, p, false)
	}
}

func (g *gorillaConn) Reply(payload []byte) bool { return g.Push(payload) }

func (g *gorillaConn) Push(payload []byte) bool {
	return g.queueFrame(outFrame{websocket.TextMessage, payload}, false)
}

func (g *gorillaConn) Ping() { g.queueFrame(outFrame{websocket.PingMessage, nil}, false) }

func (g *gorillaConn) Close(code int, reason string, last []byte) {
	if last != nil && !g.queueFrame(outFrame{websocket.TextMessage, last}, true) {
		return
	}
	if len(reason) > 123 {
		reason = reason[:123]
	}
	g.queueFrame(outFrame{websocket.CloseMessage, websocket.FormatCloseMessage(code, reason)}, true)
}

func (g *gorillaConn) LastRead() time.Time { return time.Unix(0, g.lastRead.Load()) }

// End closes the socket; the reader then ends the connection.
func (g *gorillaConn) End() { g.ws.Close() }

// Drop sends a close frame, waiting for the socket a moment at most, on
// a goroutine of its own (the sweeper calls it), then ends the
// connection. gorilla lets WriteControl run beside the writer.
func (g *gorillaConn) Drop(code int, reason string) {
	if g.dropped.Swap(true) {
		return
	}
	go func() {
		g.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, reason), time.Now().Add(dropWait))
		g.End()
	}()
}

// dropWait bounds Drop's close frame: the peer is presumed gone.
const dropWait = 100 * time.Millisecond

// queueFrame queues f for the writer; forClose lets a full queue take
// the close and the errno before it.
func (g *gorillaConn) queueFrame(f outFrame, forClose bool) bool {
	g.mu.Lock()
	if g.closing || g.full && !forClose {
		g.mu.Unlock()
		return false
	}
	if !forClose && len(g.queue) >= deviceOutbox {
		g.full = true
		g.mu.Unlock()
		g.d.QueueFull()
		return false
	}
	g.queue = append(g.queue, f)
	g.closing = f.op == websocket.CloseMessage
	g.mu.Unlock()
	select {
	case g.wake <- struct{}{}:
	default:
	}
	return true
}

// write is the writer: each frame with a deadline, until the close is
// out; then the reader gets lingerTime to see the peer's close.
func (g *gorillaConn) write() {
	var batch []outFrame
	for {
		select {
		case <-g.wake:
		case <-g.done:
			return
		}
		g.mu.Lock()
		batch, g.queue = g.queue, batch[:0]
		g.mu.Unlock()
		for _, f := range batch {
			deadline := time.Now().Add(writeWait)
			var err error
			if f.op == websocket.TextMessage {
				g.ws.SetWriteDeadline(deadline)
				err = g.ws.WriteMessage(f.op, f.payload)
			} else {
				err = g.ws.WriteControl(f.op, f.payload, deadline)
			}
			if err != nil {
				g.End()
				return
			}
			if f.op == websocket.CloseMessage {
				g.ws.SetReadDeadline(time.Now().Add(lingerTime))
				return
			}
		}
		clear(batch)
	}
}
