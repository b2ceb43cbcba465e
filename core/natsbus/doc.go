// Package natsbus is core.Bus on core NATS, for cluster mode (PROTOCOL
// §10): the subjects every Presence node of a deployment publishes and
// listens on to hear the others' status updates and invalidations.
//
// Every message of a node travels in a frame (batch.go) on one subject,
// presence.bus.f: a node's publisher sends, as one NATS message, all
// that the node queued since its previous send, with no timer
// (docs/cluster.md, "The bus"). The messages: a routed status update, an invalidation
// (grants, apps, keys, CLI changes), what one node's devices of a user
// show an app, a device session opened or handed over, a node's
// heartbeat, a starting node's request for what every node's devices
// show, which apps a node holds channels of, notifications just stored.
//
// Each node subscribes once, to presence.bus.>: one subscription per node,
// never one per user or per app, so every node hears every message in the
// order each publisher queued it, and keeps every app's current statuses for
// the probes and initial presences it may be asked for.
//
// A node applies its own messages at once, on the publisher's goroutine,
// and drops them if NATS echoes them back (each frame carries its
// origin's random id; cmd/presence asks the server not to echo), so
// nothing is applied twice and a node's own
// channels do not wait for a round trip.
package natsbus
