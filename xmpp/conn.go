package xmpp

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	"mellium.im/xmpp"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stream"

	"github.com/presence-service/presence/core"
)

// conn is one component connection: a reader (mellium's Serve and the
// handlers), one writer goroutine that alone drains the outbox and the job
// queue, and one notifier goroutine that stores notifications in batches.
// It is the app's core.AppSink.
type conn struct {
	srv  *Server
	raw  net.Conn // the accepted socket
	sock net.Conn // raw, or the TLS connection over it
	g    *guardConn
	log  *slog.Logger

	// Set by the negotiator before Serve, read-only afterwards.
	app     core.AppID
	addr    jid.JID // <app_id>.<domain>
	keyHash []byte  // of the key the handshake proved; a rotation since refuses the attach

	session *xmpp.Session      // set before the writer starts
	outbox  *core.StatusOutbox // router → writer, coalescing per PUID
	jobs    chan job           // handlers and notifier → writer
	notes   chan noteReq       // handlers → notifier
	mu      sync.Mutex         // guards: ready
	ready   bool               // negotiated: Close no longer interrupts reads
	done    chan struct{}      // closed when Serve has returned
	wdone   chan struct{}      // closed when the writer has exited
	ndone   chan struct{}      // closed when the notifier has exited
	closing chan struct{}      // closed by Close
	once    sync.Once          // guards: closing, errno
	errno   core.Errno         // why Close was called; read after <-closing
	endOnce sync.Once          // the stream error is written once

	// The writer's alone.
	wbuf       []byte // presence stanzas being written (flush)
	presenceID uint64 // the last presence stanza's id
}

const (
	jobQueue  = 256 // stanzas waiting for the writer besides presence
	noteQueue = 256 // messages waiting to be stored
)

func newConn(s *Server, nc net.Conn) *conn {
	return &conn{
		srv:     s,
		raw:     nc,
		sock:    nc,
		log:     s.log.With("remote", nc.RemoteAddr().String()),
		outbox:  core.NewStatusOutbox(),
		jobs:    make(chan job, jobQueue),
		notes:   make(chan noteReq, noteQueue),
		done:    make(chan struct{}),
		wdone:   make(chan struct{}),
		ndone:   make(chan struct{}),
		closing: make(chan struct{}),
	}
}

// SendStatus queues u for the writer; it never blocks (core.AppSink).
func (c *conn) SendStatus(u core.StatusUpdate) { c.outbox.Push(u) }

// Close ends the stream with the stream error for errno (core.AppSink);
// it returns at once, the writer does the work.
func (c *conn) Close(errno core.Errno) {
	c.once.Do(func() {
		c.errno = errno
		close(c.closing)
		c.mu.Lock()
		if !c.ready {
			c.raw.SetReadDeadline(time.Now()) // interrupt the handshake
		}
		c.mu.Unlock()
	})
}

func (c *conn) isClosing() bool {
	select {
	case <-c.closing:
		return true
	default:
		return false
	}
}

// run serves the connection from accept to close.
func (c *conn) run() {
	defer c.srv.forget(c)
	defer c.raw.Close()

	deadline := time.Now().Add(c.srv.cfg.HandshakeTimeout)
	c.raw.SetReadDeadline(deadline)
	if cfg := c.srv.cfg.TLS; cfg != nil {
		tc := tls.Server(c.raw, cfg)
		ctx, cancel := context.WithDeadline(context.Background(), deadline)
		err := tc.HandshakeContext(ctx)
		cancel()
		if err != nil {
			c.log.Debug("TLS handshake failed", "err", err)
			return
		}
		c.sock = tc
	}
	c.g = newGuardConn(c.sock, c.srv.cfg.MaxStanzaBytes, c.srv.cfg.WriteTimeout)

	// Background: the socket's deadline bounds the handshake. A context
	// deadline would make mellium reset the socket's deadlines from a
	// goroutine of its own.
	s, err := xmpp.ReceiveSession(context.Background(), c.g, 0, c.negotiator())
	if err != nil {
		c.logHandshake(err)
		c.linger()
		return
	}
	// From here the writer ends the stream when Close is called (it
	// sees c.closing even if Close came first).
	c.mu.Lock()
	c.ready = true
	c.raw.SetReadDeadline(time.Time{})
	c.mu.Unlock()
	c.session = s
	c.g.onViolation = c.endStream
	log := c.log.With("app", int64(c.app))

	detach, err := c.srv.cfg.Router.AttachApp(context.Background(), c.app, c, core.AttachOptions{Initial: true, KeyHash: c.keyHash})
	if err != nil {
		log.Warn("component refused after handshake", "err", err)
		c.endStream(closeError(core.ErrnoOf(err)))
		c.linger()
		return
	}
	log.Info("component connected")

	go c.writeLoop()
	go c.notifyLoop()
	err = s.Serve(c.handler())
	close(c.done)
	<-c.wdone
	<-c.ndone
	// Let the app go before the linger: a component that reconnects at
	// once must not meet its own ghost (conflict).
	c.srv.letGo(c, detach)
	var se stream.Error
	switch {
	case err == nil, errors.Is(err, io.EOF):
		log.Info("component disconnected")
	case errors.As(err, &se):
		log.Warn("component stream ended", "condition", se.Err, "text", streamText(se))
	default:
		log.Info("component connection ended", "err", err)
	}
	c.linger()
}

// linger gives the peer time to read our last words and close first:
// closing a socket with unread input sends a reset, which may destroy
// the stream error before the peer reads it.
func (c *conn) linger() {
	c.raw.SetReadDeadline(time.Now().Add(closeWait))
	io.Copy(io.Discard, io.LimitReader(c.sock, 1<<20))
}

// endStream writes a stream error and our </stream:stream> (once), then
// bounds the wait for the peer's.
//
// Stream errors never go through mellium's Serve: v0.22.0 encodes the
// error into its buffered encoder, then writes </stream:stream> straight
// to the socket without flushing, so the peer gets the end of the stream
// and never the error. Once the output is closed here, Serve writes
// nothing more. The caller must not hold the session's output lock:
// handlers read their whole stanza before they write (see handler).
func (c *conn) endStream(e stream.Error) {
	c.endOnce.Do(func() {
		w := c.session.TokenWriter()
		e.WriteXML(w)
		w.Close()
		c.session.Close()
		c.raw.SetReadDeadline(time.Now().Add(closeWait))
	})
}

// ended reports whether our output stream is closed.
func (c *conn) ended() bool { return c.session.State()&xmpp.OutputStreamClosed != 0 }

// closeError is the stream error that tells a component why Presence
// ends its stream.
func closeError(errno core.Errno) stream.Error {
	switch errno {
	case core.ErrnoShuttingDown:
		return withText(stream.SystemShutdown, "server shutting down: connect again")
	case core.ErrnoBadKey:
		return withText(stream.Reset, "API key rotated: connect with the new key")
	case core.ErrnoAppInactive:
		return withText(stream.NotAuthorized, "app not activated")
	}
	return withText(stream.UndefinedCondition, errno.DefaultReason())
}

func (c *conn) logHandshake(err error) {
	var he *handshakeError
	if errors.As(err, &he) {
		c.log.Info("component refused", "condition", he.cond.Err, "text", streamText(he.cond), "detail", he.detail)
		return
	}
	c.log.Debug("component handshake failed", "err", err)
}

func streamText(e stream.Error) string {
	if len(e.Text) > 0 {
		return e.Text[0].Value
	}
	return ""
}
