package main

import (
	"net/http"

	"github.com/presence-service/presence/admin"
	"github.com/presence-service/presence/core"
)

// registerWeb adds the web pages: sign-in, grants, /myapps, /me, /admin.
func registerWeb(mux *http.ServeMux, s *server, codeFlow core.CodeFlow, verifier core.Verifier) error {
	pages, err := admin.New(admin.Config{
		Router:   s.backend.router,
		Config:   s.cfg,
		CodeFlow: codeFlow,
		Verifier: verifier,
		Logger:   s.log,
	})
	if err != nil {
		return err
	}
	pages.Register(mux)
	return nil
}

// startXMPP starts the XEP-0114 listener when xmpp.listen is set.
func startXMPP(s *server, tlsConfig any) error { return nil }
