// Package sqlite implements core.Registry, core.NotificationQueues and
// core.StatusQueue on one SQLite file, with sqlx and
// github.com/mattn/go-sqlite3 (cgo).
//
// The file is opened twice: a pool of read-only connections for queries,
// and one writer connection (SQLite allows one writer at a time). Every
// write, from CreateApp to AddNotifications, is a job handed to a single
// committer goroutine, which takes everything queued, runs each job inside
// its own SAVEPOINT of one transaction, commits once, and only then answers
// the callers (group commit). A job that fails rolls back to its savepoint
// and leaves the others of the same commit alone, so one app's bad batch
// never costs another app its notifications, and many small writers share
// one fsync instead of taking turns at it. The AddNotifications batches of
// one commit go further and share statements (addGroup): checked one by
// one, written with one INSERT per 100 rows; if that fails, they run one
// by one. The writer's commits checkpoint the WAL (wal_autocheckpoint).
//
// The notifications table is a log with no index but its seq: the
// committer keeps, in memory, which rows make up each PUID's queue
// (queueIndex, loaded from the table at open), and readers find a user's
// items through it by seq. A full queue's oldest items are deleted, by
// seq, in the write that drops them.
//
// The database runs in WAL mode, and when a write method returns nil its
// data is on disk, so a 200 from the notification endpoint means durable:
// each commit's callers are answered only after an fdatasync(2) of the
// WAL, which a goroutine beside the committer runs while the next
// callers queue (walsync.go; synchronous=NORMAL otherwise). Checkpoints
// are SQLite's own (wal_autocheckpoint). Foreign keys are on (not on
// notifications, whose queue RevokeGrant deletes itself): revoking a
// grant deletes its waiting status and its notifications. Times are
// stored as Unix nanoseconds (UTC); a zero time.Time is stored as NULL or
// 0 and read back as zero. Why each mechanism beyond plain SQL is here,
// with its measurement: docs/decisions.md, "SQLite".
//
// Errors: a missing row is an error for which errors.Is(err,
// core.ErrNotFound) holds; a duplicate key is core.ErrConflict. A bad item
// of AddNotifications is a *core.ItemError (alias ItemError) that names
// its index and unwraps to the *core.Error the edges map to the wire.
package sqlite
