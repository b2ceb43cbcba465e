// Package jetstream keeps a Presence cluster's queues in NATS JetStream
// (PROTOCOL §10): the live-notification queues (core.NotificationQueues)
// and the app status queue (core.StatusQueue), shared by every node, each
// message kept on the stream's replicas (cluster.replicas, 3 by default).
//
// The subject layout, streams and what an OK means are in docs/cluster.md;
// in short:
//
//   - PRESENCE_NOTIFICATIONS holds presence.n.<user>.<app>.<puid>, one
//     subject per PUID (its queue), <user> being the user id in unpadded
//     lower-case base32 so that any id is one subject token. At most
//     notifications.queue_size messages per subject, the oldest discarded
//     by the server itself; a batch is one atomic batch publish (stored
//     whole or not at all); an ack deletes the message; a user's pending
//     notifications are one filtered read of presence.n.<user>.>.
//   - PRESENCE_STATUS holds presence.s.<app>.<puid>, one message per
//     subject (the newest status), dropped after apps.status_queue_ttl.
//     It is a core.SharedStatusQueue: nodes put what they route while no
//     node holds a channel of the app, and the first channel takes it.
//
// A notification's id is its stream sequence in 16 hex digits followed by
// 128 random bits kept in the message: an ack finds the message by the
// sequence and deletes it only when the random part and the user match,
// so an id cannot be guessed from another, nor acked by another user.
//
// A notification past its expires_at stays queued and is still delivered
// (PROTOCOL §2), so the stream keeps it until PurgeNotifications (run by
// the router after notifications.max_age) or an ack removes it; JetStream's
// per-message TTL, which would drop it at expires_at, is not used.
//
// Reads of queues go to any replica (direct get), so one may lag the
// stream's leader by the replication delay: it may miss an item just
// added (pushed live anyway, and on the next connect), and it may still
// hold an item just acked. Each item a read returns is confirmed on the
// leader before it is listed, so an acked notification never comes
// again. An ack reads its message from the leader too, so that it never
// misses an item just added.
package jetstream
