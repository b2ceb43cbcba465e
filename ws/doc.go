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
// into frames; it holds no presence logic of its own. Without TLS a front
// door (FrontDoor) reads each new connection's first request: device
// upgrades are answered there, everything else by net/http. A
// notification POST waits for its batch's commit in its net/http handler,
// which writes the answer. Idle
// device sockets wait with no goroutine in epoll sets, one per core,
// whose collectors answer status and ping themselves and hold the
// requests that may wait for reader goroutines. A device's writes go
// through a queue: an answer is written at once as far as the socket
// takes it, and a writer goroutine runs only while something is left, so
// an idle device costs a few KiB and no goroutine, and a device that
// does not read holds up no other. A connection the server closes first
// lingers for up to 2 s, so that its reset does not discard the errno.
//
// Close codes: 1009 for an oversize frame, 1008 for errno -1, -5 and for
// a refused app key, 1000 for -2 and -3, 1001 for -4, 1013 for -6 (the
// device read too slowly).
package ws
