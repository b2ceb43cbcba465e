package sqlite

import (
	"fmt"
	"sync/atomic"
	"time"
)

// Rows that a full queue drops are not deleted where they are dropped:
// that would dirty the page of each one, an old page at random, in the
// hot path of every notification write. The drop is a tombstone instead
// (notification_tombstones, an insert at the end of a small table), and
// the rows go later, oldest first, gcChunk at a time, where the rows of
// one chunk mostly share their pages.
const gcChunk = 4096 // tombstones per collection

// gcIdleDelay is how long the committer waits for a job before it
// collects on its own: 50 ms (a variable for the tests that need
// tombstones to stay).
var gcIdleDelay atomic.Int64

func init() { gcIdleDelay.Store(int64(50 * time.Millisecond)) }

// collectGarbage deletes up to limit of the oldest tombstoned rows and
// their tombstones, in the committer's transaction, and returns how many
// went.
func collectGarbage(tx *writeTx, limit int) (int, error) {
	if tx.queues.tombstones == 0 {
		return 0, nil
	}
	if _, err := tx.execP(`DELETE FROM notifications WHERE seq IN
		(SELECT seq FROM notification_tombstones ORDER BY seq LIMIT ?)`, limit); err != nil {
		return 0, fmt.Errorf("sqlite: collect dropped notifications: %w", err)
	}
	res, err := tx.execP(`DELETE FROM notification_tombstones WHERE seq IN
		(SELECT seq FROM notification_tombstones ORDER BY seq LIMIT ?)`, limit)
	if err != nil {
		return 0, fmt.Errorf("sqlite: collect dropped notifications: %w", err)
	}
	n, _ := res.RowsAffected()
	tx.queues.tombstones -= int(n)
	if n == 0 {
		tx.queues.tombstones = 0 // the count was off: there are none
	}
	return int(n), nil
}

// insertTombstones holds the INSERT of 1 to tombstoneChunk tombstones.
const tombstoneChunk = 100

var insertTombstoneQueries = func() []string {
	q := make([]string, tombstoneChunk+1)
	values := `INSERT INTO notification_tombstones (seq) VALUES `
	for n := 1; n <= tombstoneChunk; n++ {
		if n > 1 {
			values += ","
		}
		values += "(?)"
		q[n] = values
	}
	return q
}()

// addTombstones marks these rows dropped, durably with the transaction.
func addTombstones(tx *writeTx, seqs []int64) error {
	args := make([]any, 0, tombstoneChunk)
	for start := 0; start < len(seqs); start += tombstoneChunk {
		chunk := seqs[start:min(start+tombstoneChunk, len(seqs))]
		args = args[:0]
		for _, s := range chunk {
			args = append(args, s)
		}
		if _, err := tx.execP(insertTombstoneQueries[len(chunk)], args...); err != nil {
			return err
		}
	}
	return nil
}
