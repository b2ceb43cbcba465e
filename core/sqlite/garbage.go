package sqlite

import (
	"fmt"
	"slices"
	"strconv"
	"sync/atomic"
	"time"
)

// Rows that a full queue drops are not deleted where they are dropped:
// that would dirty the page of each one, an old page at random, in the
// hot path of every notification write. The drop is a tombstone instead,
// and the rows go later, oldest write first, about gcChunk at a time,
// where the rows of one chunk mostly share their pages.
//
// A write's tombstones are one row of notification_tombstones (their
// seqs a JSON array): one insert per write, not one per item. Measured
// with BenchmarkAddNotificationBatch100Parallel (full queues, an item
// dropped per item added): a row per tombstone cost the committer about
// 2 µs per item, its insert and its delete, a third of all it did.
const gcChunk = 4096 // tombstones per collection

// droppedSeqs is a query of the seqs of every tombstone.
const droppedSeqs = `SELECT j.value FROM notification_tombstones t, json_each(t.seqs) j`

// tombstoneRow is one row of notification_tombstones, as the queue index
// remembers it: the write's first seq (the row's key) and how many seqs
// it holds.
type tombstoneRow struct {
	Seq   int64 `db:"seq"`
	Count int   `db:"count"`
}

// tombstoneLog is the queue index's copy of notification_tombstones: its
// rows, oldest write first, and the seqs they hold in all, kept together
// so that the count is always the rows'.
type tombstoneLog struct {
	rows  []tombstoneRow
	count int
}

func newTombstoneLog(rows []tombstoneRow) tombstoneLog {
	l := tombstoneLog{rows: rows}
	for _, r := range rows {
		l.count += r.Count
	}
	return l
}

// pending is how many dropped rows wait for collection.
func (l *tombstoneLog) pending() int { return l.count }

func (l *tombstoneLog) add(r tombstoneRow) {
	l.rows = append(l.rows, r)
	l.count += r.Count
}

// oldest returns the key of the last of the oldest rows that together
// hold at least limit seqs (all of them if fewer), and how many seqs
// that is; ok is false when there is none.
func (l *tombstoneLog) oldest(limit int) (last int64, n int, ok bool) {
	k := 0
	for k < len(l.rows) && n < limit {
		n += l.rows[k].Count
		k++
	}
	if k == 0 {
		return 0, 0, false
	}
	return l.rows[k-1].Seq, n, true
}

// dropThrough forgets the rows up to the key last (collected).
func (l *tombstoneLog) dropThrough(last int64) {
	k := 0
	for k < len(l.rows) && l.rows[k].Seq <= last {
		l.count -= l.rows[k].Count
		k++
	}
	l.rows = slices.Delete(l.rows, 0, k)
}

// gcIdleDelay is how long the committer waits for a job before it
// collects on its own: 50 ms (a variable for the tests that need
// tombstones to stay).
var gcIdleDelay atomic.Int64

func init() { gcIdleDelay.Store(int64(50 * time.Millisecond)) }

// collectGarbage deletes the rows of the oldest tombstone rows, until at
// least limit rows went or none is left, and those tombstone rows, in the
// committer's transaction, and returns how many tombstones went.
func collectGarbage(tx *writeTx, limit int) (int, error) {
	last, n, ok := tx.queues.tombstones.oldest(limit)
	if !ok {
		return 0, nil
	}
	if _, err := tx.execP(`DELETE FROM notifications WHERE seq IN
		(SELECT j.value FROM notification_tombstones t, json_each(t.seqs) j WHERE t.seq <= ?)`, last); err != nil {
		return 0, fmt.Errorf("sqlite: collect dropped notifications: %w", err)
	}
	if _, err := tx.execP(`DELETE FROM notification_tombstones WHERE seq <= ?`, last); err != nil {
		return 0, fmt.Errorf("sqlite: collect dropped notifications: %w", err)
	}
	// The index learns it now, before the COMMIT: a failed transaction
	// makes the committer load it again anyway (stale).
	tx.queues.tombstones.dropThrough(last)
	return n, nil
}

// addTombstones marks these rows dropped, durably with the transaction,
// as one row keyed by first, the first seq of the write that dropped them.
// The index learns of it from the caller, once every statement of the
// write has succeeded.
func addTombstones(tx *writeTx, first int64, seqs []int64) error {
	if len(seqs) == 0 {
		return nil
	}
	list := make([]byte, 0, 2+len(seqs)*8)
	list = append(list, '[')
	for i, s := range seqs {
		if i > 0 {
			list = append(list, ',')
		}
		list = strconv.AppendInt(list, s, 10)
	}
	list = append(list, ']')
	return tx.writeP(`INSERT INTO notification_tombstones (seq, seqs, count) VALUES (?, ?, ?)`,
		first, string(list), int64(len(seqs)))
}
