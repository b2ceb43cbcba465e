package xmpp_test

import (
	"context"
	"log/slog"
	"net"
	"time"

	"github.com/presence-service/presence/core"
	"github.com/presence-service/presence/xmpp"
)

// How cmd/presence wires the listener: one Server on xmpp.listen, shut
// down with the rest.
func ExampleNewServer() {
	var router *core.Router // the running router
	ln, err := net.Listen("tcp", "127.0.0.1:5347")
	if err != nil {
		return
	}
	srv := xmpp.NewServer(xmpp.Config{
		Router:                 router,
		Domain:                 "presence.localhost",
		TLS:                    nil, // a *tls.Config when server.tls_cert/key are set
		Logger:                 slog.Default(),
		NotificationsPerMinute: 6000,
	})
	go srv.Serve(ln) // returns xmpp.ErrServerClosed after Shutdown

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	srv.Shutdown(ctx) // every component gets system-shutdown
}
