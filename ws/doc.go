// Package ws is the WebSocket and HTTP edge of Presence for devices and
// AppServices:
//
//   - GET /presence: the device channel (PROTOCOL §2);
//   - GET /{app_id}: the app channel (§3): status arrays out, probes and
//     notification batches in (app_notify.go);
//   - POST /{app_id}/notification: live notifications from apps (§4);
//   - GET /healthz and GET /metrics (§9).
//
// It translates JSON frames into core.Router calls and router events back
// into frames; it holds no presence logic of its own.
//
// The device protocol (device.go) is one translator over two transports:
// ws/internal/netpoll, epoll and RFC 6455 on plain TCP sockets, where an
// idle device costs no goroutine; and gorillaConn, a reading and a
// writing goroutine per connection, for TLS, for systems without epoll
// and for upgrades out of the ordinary. Without TLS a front door
// (FrontDoor) reads each new connection's request head and answers a
// plain device upgrade itself, for netpoll; everything else goes to
// net/http. A notification POST waits in its net/http handler for its
// batch's commit and writes the answer.
//
// Sends to a device never wait: frames queue (at most 256; past that the
// device is dropped with errno -6) and a writer drains them.
//
// Close codes: 1009 for an oversize frame, 1008 for errno -1, -5 and for
// a refused app key, 1000 for -2 and -3, 1001 for -4, 1013 for -6 (the
// device read too slowly).
package ws
