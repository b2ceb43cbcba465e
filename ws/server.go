package ws

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	presence "github.com/presence-service/presence"
	"github.com/presence-service/presence/core"
	"github.com/presence-service/presence/ws/internal/netpoll"
)

// Config wires the edge to the router.
type Config struct {
	Router   *core.Router
	Verifier core.Verifier
	Config   *presence.Config
	Logger   *slog.Logger
}

// Server serves the device and app channels and the notification endpoint.
type Server struct {
	router   *core.Router
	verifier core.Verifier
	cfg      *presence.Config
	log      *slog.Logger
	upgrader websocket.Upgrader // app channels

	poller    *netpoll.Poller // nil: every device is a gorillaConn
	live      liveDevices     // open device channels, for the sweeper
	nextShard atomic.Uint32
	bufs      sync.Pool // the front door's buffers for request heads
	stop      chan struct{}
	stopOnce  sync.Once

	conns sync.WaitGroup // live connections, for Shutdown
}

// writeWait bounds every write; a peer that takes longer is dropped.
const writeWait = 10 * time.Second

// deviceWriteWait is the epoll transport's bound on a write that waits
// for a device's socket, in nanoseconds; zero: netpoll.WriteWait. Tests
// shorten it.
var deviceWriteWait atomic.Int64

// New returns the edge. Register its routes on a mux.
func New(c Config) *Server {
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	s := &Server{
		router:   c.Router,
		verifier: c.Verifier,
		cfg:      c.Config,
		log:      c.Logger,
		upgrader: websocket.Upgrader{
			ReadBufferSize:  512,
			WriteBufferSize: 1024,
			// No WriteBufferPool: apps are few and write all the time,
			// and putting the buffer back in a pool after each message
			// allocated (a struct converted to an interface).
			// Devices are browsers on any origin and native apps; the
			// channel is authenticated by its assertion, not by cookies.
			CheckOrigin: func(*http.Request) bool { return true },
		},
		stop: make(chan struct{}),
	}
	if c.Config.Server.TLSCert == "" { // TLS sockets cannot be read without the TLS layer
		opts := netpoll.Options{MaxMessage: c.Config.Limits.MaxFrameBytes, MaxQueue: deviceOutbox,
			WriteWait: time.Duration(deviceWriteWait.Load())}
		if p, err := netpoll.NewPoller(s.log, opts); err == nil {
			s.poller = p
		} else {
			s.log.Warn("no epoll: each device gets a reading goroutine", "err", err)
		}
	}
	s.bufs.New = func() any { b := make([]byte, c.Config.Limits.MaxFrameBytes+1024); return &b }
	go s.sweep(s.stop)
	return s
}

// Close stops the sweeper and the poller; call it after Wait.
func (s *Server) Close() {
	s.stopOnce.Do(func() {
		close(s.stop)
		if s.poller != nil {
			s.poller.Close()
		}
	})
}

// getBuf lends a buffer for a request head and the bytes after it; the pool holds pointers so that giving one
// back allocates nothing.
func (s *Server) getBuf() *[]byte  { return s.bufs.Get().(*[]byte) }
func (s *Server) putBuf(b *[]byte) { s.bufs.Put(b) }

// Register adds the edge's routes.
func (s *Server) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET /presence", s.serveDevice)
	mux.HandleFunc("GET /{app_id}", s.serveApp)
	mux.HandleFunc("POST /{app_id}/notification", s.serveNotify)
	mux.HandleFunc("GET /healthz", s.serveHealth)
	mux.Handle("GET /metrics", s.metricsHandler())
}

// Wait blocks until every connection has ended or ctx is done. Call it
// after Router.Shutdown has told every device errno -4.
func (s *Server) Wait(ctx context.Context) error {
	done := make(chan struct{})
	go func() { s.conns.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *Server) serveHealth(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if err := s.router.Health(ctx); err != nil {
		s.log.Error("health check", "err", err)
		part := "router"
		if he := (*core.HealthError)(nil); errors.As(err, &he) {
			part = he.Part
		}
		http.Error(w, part+" not answering", http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Write([]byte("ok\n"))
}
