package sqlite

import (
	"context"
	"time"

	"github.com/jmoiron/sqlx"
)

// Checkpoints copy the WAL's pages back into the database file. SQLite
// runs them by default inside the COMMIT that takes the WAL past 1000
// pages, on the writer's own connection, so one commit in every few dozen
// paid for copying a thousand pages and two fsyncs while its callers and
// everyone queued behind them waited. A background checkpointer does
// that work on its own connection instead, beside the committer (WAL lets a
// PASSIVE checkpoint run while the writer writes). Measured with
// BenchmarkAddNotificationBatch100Parallel on 2 cores: 44-50k items/s with
// the checkpoints in the commits, 54-67k without them.
//
// The writer keeps an autocheckpoint, set higher (walBackstop): a
// PASSIVE checkpoint can only copy what was committed when it began, and
// the WAL can only start over from its beginning once it has all been
// copied, which under steady writing only the writer itself can see to.
// Most of its pages have by then been copied in the background, so that
// checkpoint is short.
//
// The interval is a trade: each checkpoint copies every page written
// since the last, once, however often the commits rewrote it (the
// table's last leaf, the tombstones), and syncs the database file. At
// 20 ms the hot pages were copied fifty times a second; at 250 ms,
// presence-bench notify (batches of 100, quiet machine, four runs against
// two) stored 92-113k items/s at 11.0-13.4 server CPU-µs each instead of
// 76-83k at 15.3-16.5, and the batched benchmark wrote 0.146 pages per
// item instead of 0.167. At ~15,000 WAL pages a second that is still
// under the backstop between two checkpoints.
const (
	walBackstop        = 4000                   // pages (4 KiB): 16 MiB of WAL
	checkpointInterval = 250 * time.Millisecond // at most one background checkpoint per interval
)

// checkpointLoop runs PASSIVE checkpoints on c, at most one per
// checkpointInterval, whenever the committer has committed since the last
// (kick), until stop is closed.
func (db *DB) checkpointLoop(c *sqlx.DB, kick <-chan struct{}, stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-kick:
		}
		// A failed checkpoint (SQLITE_BUSY from another process's
		// checkpoint, say) is retried at the next kick; the writer's
		// backstop bounds the WAL meanwhile.
		c.ExecContext(context.Background(), `PRAGMA wal_checkpoint(PASSIVE)`)
		t.Reset(checkpointInterval)
		select {
		case <-stop:
			return
		case <-t.C:
		}
	}
}

// kickCheckpointer tells the checkpointer that there is something to copy;
// it never blocks the committer.
func (db *DB) kickCheckpointer() {
	select {
	case db.ckptKick <- struct{}{}:
	default:
	}
}
