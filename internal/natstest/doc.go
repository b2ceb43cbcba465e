// Package natstest runs a NATS cluster with JetStream inside the test
// process: servers of github.com/nats-io/nats-server/v2 joined by routes
// on loopback, each with its own temporary store, so that tests of the
// cluster's live plane run against the real engine, with no mock and no
// outside process. A test can take one server down (Kill) and bring it
// back on the same ports and store (Restart), to show what survives the
// loss of a server.
//
// Kill is the server's own shutdown: its clients and routes drop at once
// and the others elect new leaders, as after a crash; what it cannot show
// is a crash's torn writes on disk, which is why a JetStream OK is
// trusted to its replicas, not to one server's disk (docs/cluster.md).
package natstest
