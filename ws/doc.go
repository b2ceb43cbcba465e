// Package ws is the WebSocket and HTTP edge of Presence for devices and
// AppServices:
//
//   - GET /presence: the device channel (PROTOCOL §2);
//   - GET /{app_id}: the app status channel (§3);
//   - POST /{app_id}/notification: live notifications from apps (§4);
//   - GET /healthz and GET /metrics (§9).
//
// It translates JSON frames into core.Router calls and router events back
// into frames; it holds no presence logic of its own. Without TLS a front
// door (FrontDoor) reads each new connection's first request: device
// upgrades and keep-alive connections of notification POSTs are served
// there, everything else by net/http (a POST connection checks its key in
// full once, then against the key it proved, docs/decisions.md). Idle device sockets wait in an
// epoll set with no goroutine; a device's writes go through a queue
// drained by a writer that runs only while the queue is non-empty, so an
// idle device costs a few KiB and no goroutine.
//
// Close codes: 1009 for an oversize frame, 1008 for errno -1, -5 and for
// a refused app key, 1000 for -2 and -3, 1001 for -4, 1013 for -6 (the
// device read too slowly).
package ws
