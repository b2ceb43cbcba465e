package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"

	presence "github.com/presence-service/presence"
	"github.com/presence-service/presence/core"
	"github.com/presence-service/presence/core/identity"
	"github.com/presence-service/presence/ws"
)

// server is everything `presence serve` runs, started and stoppable, so
// that tests can run the real thing on :0.
type server struct {
	cfg     *presence.Config
	log     *slog.Logger
	backend *backend
	edge    *ws.Server
	http    *http.Server
	extras  []shutdowner // xmpp and the like, stopped in reverse order

	HTTPAddr string // where the HTTP listener is bound
	XMPPAddr string // where the XEP-0114 listener is bound ("" when off)

	stopPurge context.CancelFunc
	served    chan error
}

type shutdowner interface {
	Shutdown(ctx context.Context) error
}

func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var c common
	fs := newFlags("serve", stderr, &c)
	pprofAddr := fs.String("pprof", "", "serve net/http/pprof on this address (keep it on loopback), for profiling")
	if _, err := parseInterspersed(fs, args); err != nil {
		return err
	}
	cfg, err := c.load()
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stderr, nil)).With("node", cfg.NodeName())
	s, err := startServer(ctx, cfg, log)
	if err != nil {
		return err
	}
	if *pprofAddr != "" {
		if err := servePprof(*pprofAddr, log); err != nil {
			s.Shutdown(context.Background())
			return err
		}
	}
	select {
	case <-ctx.Done():
		log.Info("shutting down")
	case err := <-s.served:
		log.Error("listener failed", "err", err)
	}
	sctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	return s.Shutdown(sctx)
}

// startServer opens the database, builds the router and the edges, binds
// the listeners and serves in the background.
func startServer(ctx context.Context, cfg *presence.Config, log *slog.Logger) (*server, error) {
	if err := checkDevMode(cfg, log); err != nil {
		return nil, err
	}
	raiseFileLimit(log)
	b, err := openOrCreateBackend(ctx, cfg, log)
	if err != nil {
		return nil, err
	}
	s := &server{cfg: cfg, log: log, backend: b, served: make(chan error, 2)}
	ok := false
	defer func() {
		if !ok {
			b.Close()
		}
	}()
	if cfg.Clustered() {
		// Before the node joins: a node with other secrets would refuse
		// the sign-ins and keys of the others (docs/cluster.md).
		if err := checkClusterSecrets(ctx, cfg, b.nats, log); err != nil {
			return nil, err
		}
	}
	if err := b.router.Start(ctx); err != nil {
		return nil, fmt.Errorf("load waiting status queues: %w", err)
	}
	secret, err := devSecret(cfg)
	if err != nil {
		return nil, err
	}
	verifier, codeFlow, err := identity.New(ctx, cfg.Auth, secret)
	if err != nil {
		return nil, err
	}
	var tlsConfig *tls.Config
	if cfg.Server.TLSCert != "" {
		cert, err := tls.LoadX509KeyPair(cfg.Server.TLSCert, cfg.Server.TLSKey)
		if err != nil {
			return nil, fmt.Errorf("server.tls_cert: %w", err)
		}
		tlsConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}

	mux := http.NewServeMux()
	s.edge = ws.New(ws.Config{Router: b.router, Verifier: verifier, Config: cfg, Logger: log})
	s.edge.Register(mux)
	handler, err := registerWeb(ctx, mux, s, codeFlow, verifier)
	if err != nil {
		return nil, err
	}
	s.http = &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}

	// Without TLS, the device front door turns TCP keep-alive on for what it
	// hands net/http; devices need none (the WebSocket pings do its job),
	// and it is four setsockopt calls per connect.
	lc := net.ListenConfig{KeepAlive: -1}
	if tlsConfig != nil {
		lc.KeepAlive = 0 // Go's default
	}
	ln, err := lc.Listen(ctx, "tcp", cfg.Server.Listen)
	if err != nil {
		return nil, fmt.Errorf("server.listen: %w", err)
	}
	s.HTTPAddr = ln.Addr().String()
	hl := &limitListener{Listener: ln, log: log, what: "HTTP", metrics: b.router.Metrics}
	if err := startXMPP(s, tlsConfig); err != nil {
		ln.Close()
		return nil, err
	}
	go func() {
		var err error
		if tlsConfig != nil {
			s.http.TLSConfig = tlsConfig
			err = s.http.ServeTLS(hl, "", "")
		} else {
			err = s.http.Serve(s.edge.FrontDoor(hl)) // device upgrades skip net/http
		}
		if !errors.Is(err, http.ErrServerClosed) {
			s.served <- err
		}
	}()
	purgeCtx, stop := context.WithCancel(context.Background())
	s.stopPurge = stop
	go s.purgeLoop(purgeCtx)
	ok = true
	log.Info("presence serving", "version", presence.Version, "http", s.HTTPAddr, "xmpp", s.XMPPAddr,
		"verifier", cfg.Auth.Verifier, "database", databaseName(cfg), "cluster", cfg.Cluster.NATSURL)
	return s, nil
}

// Shutdown follows PROTOCOL §9: stop accepting, tell devices errno -4,
// flush the queues, close the database; nothing acknowledged is lost.
func (s *server) Shutdown(ctx context.Context) error {
	s.stopPurge()
	s.http.SetKeepAlivesEnabled(false)
	errs := []error{s.http.Shutdown(ctx)} // closes the listener; waits for plain HTTP requests
	errs = append(errs, s.backend.router.Shutdown(ctx))
	s.backend.router.CloseAllApps(core.ErrnoShuttingDown)
	for i := len(s.extras) - 1; i >= 0; i-- {
		errs = append(errs, s.extras[i].Shutdown(ctx))
	}
	if err := s.edge.Wait(ctx); err != nil {
		s.log.Warn("connections still open at shutdown", "err", err)
	}
	s.edge.Close()
	errs = append(errs, s.backend.Close())
	return errors.Join(errs...)
}

// purgeLoop deletes notifications older than notifications.max_age.
func (s *server) purgeLoop(ctx context.Context) {
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		n, err := s.backend.deps.Notifications.PurgeNotifications(ctx, time.Now().Add(-s.cfg.Notifications.MaxAge.Duration))
		if err != nil && ctx.Err() == nil {
			s.log.Error("purge notifications", "err", err)
		} else if n > 0 {
			s.log.Info("purged old notifications", "count", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// checkDevMode refuses the dev identity off loopback unless server.dev,
// and says at every start that dev identity is on.
func checkDevMode(cfg *presence.Config, log *slog.Logger) error {
	if cfg.Auth.Verifier != "dev" {
		return nil
	}
	host, _, _ := net.SplitHostPort(cfg.Server.Listen)
	ip := net.ParseIP(host)
	loopback := host == "localhost" || (ip != nil && ip.IsLoopback())
	if !loopback && !cfg.Server.Dev {
		return fmt.Errorf("auth.verifier is \"dev\" (anyone can sign in as anyone) and server.listen %q is not a loopback address: set server.dev = true to allow it, or use browserid or oidc", cfg.Server.Listen)
	}
	log.Warn("DEV IDENTITY: auth.verifier is \"dev\": anyone who can reach this server can sign in as anyone; use browserid or oidc in production")
	return nil
}

// databaseName says which database the node runs on, for its log.
func databaseName(cfg *presence.Config) string {
	if cfg.Database.Driver == "postgres" {
		return redactURL(cfg.Database.URL)
	}
	return cfg.Database.Path
}
