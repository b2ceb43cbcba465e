package core

import (
	"context"
	"time"
)

// NotificationQueues holds live notifications until a device of their user
// acks them (PROTOCOL §2 and §4). There is one FIFO queue per PUID, that
// is, per (user, app). core/sqlite implements it on one node; a cluster
// implements it on a JetStream stream with a subject per PUID, a
// per-subject cap that drops the oldest, a per-message TTL and atomic batch
// publish, deleting a message on ack.
//
// Contract, for every implementation:
//   - Every method is safe for concurrent use.
//   - AddNotifications is atomic and durable: the whole batch is stored
//     or none of it, and it returns nil only once the batch survives a
//     crash (an fsync'd commit; a publish acknowledged by the stream's
//     replicas). The caller answers the app "OK" on that return alone.
//     Each item's PUID must be a grant of app; otherwise nothing is stored
//     and the error is an *ItemError with errno 44 naming the first bad
//     index (items are checked by CheckNotification before, so field
//     errors are the caller's). Each PUID's queue keeps the newest
//     queueSize items: the oldest are dropped in the same atomic step.
//     It returns one Notification per item, in order, with ID, UserID and
//     times filled in (ExpiresAt = now + the item's TTL, or defaultTTL),
//     and each item's queue size right after the batch. It blocks, and
//     must not call back into the Router: implementations may share one
//     commit among concurrent callers, but each caller waits for its own.
//   - PendingNotifications returns a user's queued notifications for apps
//     (all apps when nil), oldest first (creation time, then insertion).
//     Expired ones stay until PurgeNotifications removes them: a device
//     shows them as missed.
//   - AckNotifications deletes the user's notifications with these ids
//     (ids unknown, or another user's, are ignored) and returns how many
//     it deleted. It is durable on return.
//   - UsersWithNotifications lists every user with at least one queued
//     notification; the Router reads it once at start.
//   - PurgeNotifications deletes notifications created before the time
//     and returns how many.
//   - DeletePUIDNotifications deletes everything still queued under a
//     PUID whose grant was revoked; the Router calls it right after
//     Registry.RevokeGrant. A store that holds the registry too (core/
//     sqlite, memstore) empties the queue inside RevokeGrant and finds
//     nothing left; a cluster's queues, beside a PostgreSQL registry, do
//     the work here. It is idempotent.
type NotificationQueues interface {
	AddNotifications(ctx context.Context, app AppID, items []NotificationInput, now time.Time, defaultTTL time.Duration, queueSize int) ([]Notification, []int, error)
	PendingNotifications(ctx context.Context, userID string, apps []AppID) ([]Notification, error)
	AckNotifications(ctx context.Context, userID string, ids []string) (int, error)
	UsersWithNotifications(ctx context.Context) ([]string, error)
	PurgeNotifications(ctx context.Context, createdBefore time.Time) (int, error)
	DeletePUIDNotifications(ctx context.Context, puid string) error
}

// StatusQueue keeps the status updates that wait for an app while none of
// its channels is connected (PROTOCOL §3): per (app, PUID) only the newest,
// since presence is state. On one node the Router keeps the live queue in
// memory and writes it here at shutdown, reading it back at start; a
// cluster's is a SharedStatusQueue, written as updates are routed. core/sqlite
// implements it on one node; a cluster implements it on a JetStream stream
// with one message per subject (app.PUID) and a max age.
//
// Contract, for every implementation:
//   - Every method is safe for concurrent use; writes are durable on return.
//   - SaveWaiting upserts each update, keeping per (app, PUID) the one with
//     the latest At, and skips PUIDs that are no longer grants of app
//     (revoked while they waited). It stores all of them or none.
//   - TakeWaiting returns the app's waiting updates at or after since,
//     oldest first, and deletes every waiting update of the app, older
//     ones too.
//   - AllWaiting returns every waiting update at or after since, by app,
//     deleting nothing.
type StatusQueue interface {
	SaveWaiting(ctx context.Context, app AppID, updates []StatusUpdate) error
	TakeWaiting(ctx context.Context, app AppID, since time.Time) ([]StatusUpdate, error)
	AllWaiting(ctx context.Context, since time.Time) (map[AppID][]StatusUpdate, error)
}

// SharedStatusQueue is a StatusQueue that every node of a cluster shares
// (core/jetstream's). With one, the Router keeps no app's waiting queue in
// memory: each node writes there what it routes while no node holds a
// channel of the app, and the first channel to attach takes it
// (sharedqueue.go). One node runs without it.
//
// Contract, beside StatusQueue's:
//   - PutWaiting stores each update as its (app, PUID)'s waiting one,
//     replacing whatever waits there, whatever its time: the caller
//     writes one PUID's updates in the order it routed them. It checks no
//     grant (TakeWaiting skips revoked PUIDs) and is durable on return.
//   - DropWaiting deletes every waiting update of the app.
type SharedStatusQueue interface {
	StatusQueue
	PutWaiting(ctx context.Context, app AppID, updates []StatusUpdate) error
	DropWaiting(ctx context.Context, app AppID) error
}
