// Package ws is the WebSocket and HTTP edge of Presence for devices and
// AppServices:
//
//   - GET /presence: the device channel (PROTOCOL §2);
//   - GET /{app_id}: the app status channel (§3);
//   - POST /{app_id}/notification: live notifications from apps (§4);
//   - GET /healthz and GET /metrics (§9).
//
// It translates JSON frames into core.Router calls and router events back
// into frames; it holds no presence logic of its own. Each connection has
// one reader goroutine; writes go through an outbox drained by a writer
// that runs only while the outbox is non-empty, so an idle device costs
// one goroutine and small buffers.
//
// Close codes: 1009 for an oversize frame, 1008 for errno -1, -5 and for
// a refused app key, 1000 for -2 and -3, 1001 for -4, 1013 for -6 (the
// device read too slowly).
package ws
