package xmpp

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/presence-service/presence/core"
)

// Defaults for the zero fields of Config.
const (
	DefaultHandshakeTimeout = 10 * time.Second
	DefaultWriteTimeout     = 10 * time.Second
	DefaultKeepAlive        = 60 * time.Second
	DefaultMaxStanzaBytes   = 64 << 10
	DefaultNotificationsPM  = 6000
	closeWait               = 2 * time.Second // for the peer's </stream:stream>
)

// ErrServerClosed is what Serve returns after Shutdown.
var ErrServerClosed = errors.New("xmpp: server closed")

// Config is what NewServer needs. Router and Domain are required.
type Config struct {
	Router *core.Router
	Domain string      // xmpp.domain: users are puid@Domain, components <app_id>.Domain
	TLS    *tls.Config // non-nil: XEP-0114 over a TLS socket (server.tls_cert/key)
	Logger *slog.Logger

	// NotificationsPerMinute is limits.notifications_per_minute, per app.
	NotificationsPerMinute int
	// Limiter, when set, returns the app's notification limiter, so that
	// the HTTP endpoint and this listener draw on one bucket per app.
	// Nil: this server keeps its own bucket per app.
	Limiter func(core.AppID) *core.RateLimiter

	HandshakeTimeout time.Duration // from accept to <handshake/>; 0: 10 s
	WriteTimeout     time.Duration // for every write; 0: 10 s
	KeepAlive        time.Duration // whitespace ping when idle; 0: 60 s, <0: off
	MaxStanzaBytes   int           // 0: 64 KiB
}

// Server accepts XEP-0114 components. Each active app may hold one
// component connection at a time.
type Server struct {
	cfg Config
	log *slog.Logger
	dom string // cfg.Domain as mellium normalizes it

	mu        sync.Mutex // guards: listeners, conns, byApp, limiters, closing
	listeners map[net.Listener]struct{}
	conns     map[*conn]struct{}
	byApp     map[core.AppID]*conn
	limiters  map[core.AppID]*core.RateLimiter
	closing   bool

	wg sync.WaitGroup // one per connection goroutine
}

// NewServer returns a server; call Serve with a listener.
func NewServer(cfg Config) *Server {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.HandshakeTimeout <= 0 {
		cfg.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = DefaultWriteTimeout
	}
	if cfg.KeepAlive == 0 {
		cfg.KeepAlive = DefaultKeepAlive
	}
	if cfg.MaxStanzaBytes <= 0 {
		cfg.MaxStanzaBytes = DefaultMaxStanzaBytes
	}
	if cfg.NotificationsPerMinute <= 0 {
		cfg.NotificationsPerMinute = DefaultNotificationsPM
	}
	dom := strings.ToLower(cfg.Domain)
	if d, err := jid.Parse(cfg.Domain); err == nil {
		dom = d.Domainpart()
	}
	return &Server{
		cfg:       cfg,
		dom:       dom,
		log:       cfg.Logger.With("edge", "xmpp"),
		listeners: make(map[net.Listener]struct{}),
		conns:     make(map[*conn]struct{}),
		byApp:     make(map[core.AppID]*conn),
		limiters:  make(map[core.AppID]*core.RateLimiter),
	}
}

// Serve accepts connections on ln until Shutdown, then returns
// ErrServerClosed. ln is closed when Serve returns.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		ln.Close()
		return ErrServerClosed
	}
	s.listeners[ln] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, ln)
		s.mu.Unlock()
		ln.Close()
	}()

	var backoff time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			if s.isClosing() {
				return ErrServerClosed
			}
			if retryable(err) {
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				s.log.Warn("accept failed; retrying", "err", err, "in", backoff)
				time.Sleep(backoff)
				continue
			}
			return err
		}
		backoff = 0
		c := s.newConn(nc)
		if c == nil {
			nc.Close()
			continue
		}
		go c.run()
	}
}

// retryable reports an accept error that accepting again later may cure:
// a resource shortage such as EMFILE, as net/http's Server treats it.
func retryable(err error) bool {
	var t interface{ Temporary() bool }
	return errors.As(err, &t) && t.Temporary()
}

func (s *Server) isClosing() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closing
}

// newConn registers a connection; nil when the server is closing.
func (s *Server) newConn(nc net.Conn) *conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return nil
	}
	c := newConn(s, nc)
	s.conns[c] = struct{}{}
	s.wg.Add(1)
	return c
}

// forget removes an ended connection.
func (s *Server) forget(c *conn) {
	s.release(c)
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	s.wg.Done()
}

// letGo ends c's hold on its app: it detaches c's channel, gives back
// what the app never got (it waits for the app's next channel), and frees
// the app for another connection, all under the server's lock. A
// newcomer's claim so finds c either still holding the app (conflict,
// as with any live connection of the app) or gone with its updates
// requeued, never in between. (A claim that came between the detach and
// the release used to be refused; the CI met it once, in
// TestStanza_FromAndTo.) Lock order: s.mu, then the router's app lock.
func (s *Server) letGo(c *conn, detach func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	detach()
	s.cfg.Router.Requeue(c.app, c.outbox.Take(nil))
	if s.byApp[c.app] == c {
		delete(s.byApp, c.app)
	}
}

// release frees c's app for another connection.
func (s *Server) release(c *conn) {
	s.mu.Lock()
	if s.byApp[c.app] == c {
		delete(s.byApp, c.app)
	}
	s.mu.Unlock()
}

// claim makes c the connection of app. It fails when another connection
// of the same app is up: the newcomer is refused with conflict (see
// doc.go for why the older one wins).
func (s *Server) claim(app core.AppID, c *conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return false
	}
	if other, ok := s.byApp[app]; ok && other != c {
		return false
	}
	s.byApp[app] = c
	return true
}

// limiter returns app's notification bucket.
func (s *Server) limiter(app core.AppID) *core.RateLimiter {
	if s.cfg.Limiter != nil {
		return s.cfg.Limiter(app)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	l := s.limiters[app]
	if l == nil {
		l = core.NewRateLimiter(s.cfg.NotificationsPerMinute, time.Now())
		s.limiters[app] = l
	}
	return l
}

// Shutdown stops accepting, ends every component stream with
// system-shutdown (after writing what was pending for it), and waits for
// the connections to end or ctx to expire; then it closes what is left.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closing = true
	for ln := range s.listeners {
		ln.Close()
	}
	conns := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, c := range conns {
		c.Close(core.ErrnoShuttingDown)
	}
	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		s.mu.Lock()
		for c := range s.conns {
			c.raw.Close()
		}
		s.mu.Unlock()
		<-done
		return ctx.Err()
	}
}

// userJID is how a PUID appears to components: puid@domain.
func (s *Server) userJID(puid string) string { return puid + "@" + s.dom }
