package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"path/filepath"

	"github.com/presence-service/presence/admin"
	"github.com/presence-service/presence/core"
	"github.com/presence-service/presence/xmpp"
)

// sessionKeyFile and signedOutFile, in the data folder, keep the pages'
// sign-ins across restarts: the key that signs session cookies, and the
// sessions signed out before they expired.
const (
	sessionKeyFile = "session_key"
	signedOutFile  = "signed_out"
)

// registerWeb adds the web pages: sign-in, grants, /myapps, /me, /device,
// /admin. It returns the server's handler: mux, with the site's 404 page
// for page loads that nothing serves.
func registerWeb(ctx context.Context, mux *http.ServeMux, s *server, codeFlow core.CodeFlow, verifier core.Verifier) (http.Handler, error) {
	// The session key lives in the data folder, like the dev secret, so
	// that a restart signs nobody out (docs/decisions.md, Web).
	sessionKey, err := core.LoadOrCreateSecret(filepath.Join(s.cfg.DataDir(), sessionKeyFile), 32)
	if err != nil {
		return nil, err
	}
	ac := admin.Config{
		Router:        s.backend.router,
		Config:        s.cfg,
		CodeFlow:      codeFlow,
		Verifier:      verifier,
		Logger:        s.log,
		SessionTTL:    sessionTTL,
		SessionKey:    sessionKey,
		SignedOutFile: filepath.Join(s.cfg.DataDir(), signedOutFile),
	}
	if s.cfg.Clustered() {
		// Every node has the same session key, so a sign-out must reach
		// every node: the bucket holds it for all of them (docs/cluster.md).
		ctx, cancel := context.WithTimeout(ctx, secretsTimeout)
		defer cancel()
		signOuts, err := openSignOuts(ctx, s.backend.nats, s.cfg.Cluster.Replicas)
		if err != nil {
			return nil, err
		}
		ac.SignOuts = signOuts
	}
	if s.cfg.Auth.Verifier == "dev" {
		// The /device page gets its assertions from the server in dev
		// mode only (docs/decisions.md).
		secret, err := devSecret(s.cfg)
		if err != nil {
			return nil, err
		}
		ac.DevAssertions = &core.DevVerifier{Secret: secret}
	}
	pages, err := admin.New(ac)
	if err != nil {
		return nil, err
	}
	pages.Register(mux)
	return pages.NotFoundPage(mux), nil
}

// startXMPP starts the XEP-0114 listener when xmpp.listen is set; it
// speaks TLS from the first byte when the server has a certificate.
func startXMPP(s *server, tlsConfig *tls.Config) error {
	if s.cfg.XMPP.Listen == "" {
		return nil
	}
	ln, err := net.Listen("tcp", s.cfg.XMPP.Listen)
	if err != nil {
		return fmt.Errorf("xmpp.listen: %w", err)
	}
	s.XMPPAddr = ln.Addr().String()
	r := s.backend.router
	x := xmpp.NewServer(xmpp.Config{
		Router:                 r,
		Domain:                 s.cfg.XMPP.Domain,
		TLS:                    tlsConfig,
		Logger:                 s.log.With("listener", "xmpp"),
		NotificationsPerMinute: s.cfg.Limits.NotificationsPerMinute,
		Limiter:                r.NotifyLimiter,
	})
	s.extras = append(s.extras, x)
	go func() {
		err := x.Serve(&limitListener{Listener: ln, log: s.log, what: "XMPP", metrics: r.Metrics})
		if err != nil && !errors.Is(err, net.ErrClosed) && !errors.Is(err, xmpp.ErrServerClosed) {
			s.served <- err
		}
	}()
	return nil
}
