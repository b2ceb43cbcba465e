// Package natsbus is core.Bus on core NATS, for cluster mode (PROTOCOL
// §10): the subjects every Presence node of a deployment publishes and
// listens on to hear the others' status updates and invalidations.
//
// Subjects (docs/cluster.md, "The bus"):
//
//	presence.bus.s.<app_id>   a routed status update of one of the app's PUIDs
//	presence.bus.i            an invalidation (grants, apps, keys, CLI changes)
//	presence.bus.p            what one node's devices of a user show an app: nodes combine them
//	presence.bus.d            a device session opened, or handed over to a newer one on another node
//	presence.bus.h            a node's heartbeat, every 2 s: a silent node is taken for dead
//	presence.bus.sync         a starting node asks every node to say again what its devices show
//	presence.bus.n            notifications just stored: nodes push them to the devices they hold
//
// Each node subscribes once, to presence.bus.>: one subscription per node,
// never one per user or per app, so every node hears every update in the
// order each publisher sent it, and keeps every app's current statuses for
// the probes and initial presences it may be asked for.
//
// A node applies its own messages at once, on the publisher's goroutine,
// and drops them when NATS echoes them back (each message carries its
// origin's random id), so nothing is applied twice and a node's own
// channels do not wait for a round trip.
package natsbus
