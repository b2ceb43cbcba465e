package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"slices"

	"github.com/jmoiron/sqlx"
)

// maxJobsPerCommit bounds one group commit, so that a burst of writers
// cannot make the first of them wait for the last.
const maxJobsPerCommit = 512

// writeTx is the shared write transaction as one job sees it. Its statements
// run on the writer connection under a context that never ends, never a
// caller's: an interrupted statement inside a transaction makes SQLite
// roll the whole transaction back, which would take the other callers'
// work with it. (A caller that gives up is skipped before its job runs;
// busy_timeout bounds the wait for another process's lock.)
//
// The transaction is BEGIN/COMMIT on a held *sql.Conn rather than a
// *sql.Tx: database/sql starts a watcher goroutine for every query of a
// *sql.Tx.
type writeTx struct {
	c *sqlx.Conn

	// queues is the index of the notification queues (queues.go); only
	// the committer changes it.
	queues *queueIndex
}

func newWriteTx(c *sqlx.Conn, queues *queueIndex) *writeTx {
	return &writeTx{c: c, queues: queues}
}

// Exec runs a statement that returns no rows.
func (t *writeTx) Exec(query string, args ...any) (sql.Result, error) {
	return t.c.ExecContext(context.Background(), query, args...)
}

// Get scans the one row of query into dest; sql.ErrNoRows if none.
func (t *writeTx) Get(dest any, query string, args ...any) error {
	return t.c.GetContext(context.Background(), dest, query, args...)
}

// Select scans every row of query into the slice dest.
func (t *writeTx) Select(dest any, query string, args ...any) error {
	return t.c.SelectContext(context.Background(), dest, query, args...)
}

// scanRow scans the one row of query into dest (plain values, no
// struct); sql.ErrNoRows if none.
func (t *writeTx) scanRow(query string, args []any, dest ...any) error {
	return t.c.QueryRowContext(context.Background(), query, args...).Scan(dest...)
}

// A job is one caller's write. fn runs inside a SAVEPOINT of the shared
// transaction; it must use tx for every statement and must not keep it.
// (An AddNotifications job has no fn: run stores its add alone.)
// What fn returns decides only its own savepoint. The caller learns the
// outcome on res (buffered: the committer never waits for a caller that
// gave up).
type job struct {
	ctx context.Context
	fn  func(tx *writeTx) error
	res chan error

	// add, if set, is the same write as fn, an AddNotifications batch,
	// in a form the committer can merge with others (addGroup).
	add *addJob
}

// answer gives the job its outcome.
func (j *job) answer(err error) {
	j.res <- err
}

// write hands fn to the committer and waits until its transaction has
// committed (nil) or fn or the commit failed. If ctx ends while the job
// is still queued, the job is skipped; if ctx ends after the job ran,
// write returns ctx.Err() and the outcome is unknown to the caller, as
// with any database whose answer is lost.
func (db *DB) write(ctx context.Context, fn func(tx *writeTx) error) error {
	return db.submit(&job{ctx: ctx, fn: fn, res: make(chan error, 1)})
}

// submit is write for a job already built.
func (db *DB) submit(j *job) error {
	ctx := j.ctx
	if err := db.enqueue(j); err != nil {
		return err
	}
	select {
	case err := <-j.res:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// enqueue hands j to the committer, unless the database is closed or
// ctx ends first.
func (db *DB) enqueue(j *job) error {
	db.mu.RLock()
	defer db.mu.RUnlock()
	if db.closed {
		return ErrClosed
	}
	// Holding the read lock while we send keeps Close from closing jobs
	// under us; the committer keeps draining, so the send ends.
	select {
	case db.jobs <- j:
		return nil
	case <-j.ctx.Done():
		return j.ctx.Err()
	}
}

// commitLoop is the committer: the only goroutine that uses the writer
// connection. It runs until Close closes jobs, answering every job it
// took, then gives the connection back.
func (db *DB) commitLoop(conn *sqlx.Conn) {
	defer close(db.done)
	defer conn.Close()
	tx := newWriteTx(conn, db.queues)
	db.syncs = newSyncPipe()
	go db.syncLoop()
	defer db.syncs.stop()
	batch := make([]*job, 0, maxJobsPerCommit)
	for {
		j, ok := <-db.jobs
		if !ok {
			return
		}
		batch = append(batch[:0], j)
		// While the last commit's sync is in flight, the jobs that arrive
		// queue; once it is done, all of them join this commit and share
		// its sync.
		db.syncs.await()
	drain:
		for len(batch) < maxJobsPerCommit {
			select {
			case j, ok := <-db.jobs:
				if !ok {
					break drain
				}
				batch = append(batch, j)
			default:
				break drain
			}
		}
		db.commit(tx, batch)
		clear(batch) // let the answered jobs' closures be collected
	}
}

// commit runs batch in one transaction, one savepoint per job, commits,
// then hands the answers to syncLoop, which gives them once the WAL is
// synced: no job hears "ok" before the commit is durable. The last
// commit's sync is done by then (commitLoop waited for it).
// A lone job needs no savepoint: if it fails, the whole transaction is
// its own, and rolls back.
func (db *DB) commit(tx *writeTx, batch []*job) {
	errs := make([]error, len(batch))
	fail := func(err error) {
		tx.Exec(`ROLLBACK`)    // fails harmlessly when SQLite already rolled back
		tx.queues.stale = true // it may hold what the rollback undid
		for _, j := range batch {
			j.answer(err)
		}
	}

	if err := tx.begin(); err != nil {
		fail(err)
		return
	}
	live, ran := 0, 0
	for i, j := range batch {
		if errs[i] = j.ctx.Err(); errs[i] == nil {
			live++
		}
	}
	// The notification batches go first, together: the callers are all
	// still waiting, so any order of their writes is one they could
	// have seen. If they cannot share statements, they run one by one
	// below like the others. (First, too, because addGroup relies on
	// nothing having been written before it.)
	merged := make([]bool, len(batch))
	n, handled, err := db.addGroup(tx, batch, errs, merged)
	if err != nil {
		fail(err)
		return
	}
	ran += n
	live -= handled
	// A job that runs alone in the transaction needs no savepoint: if it
	// fails, the transaction rolls back. Not so once the group has
	// written: its rows must survive the job's failure.
	savepoints := live > 1 || ran > 0
	for i, j := range batch {
		if errs[i] != nil || merged[i] {
			continue
		}
		if savepoints {
			if _, err := tx.Exec(`SAVEPOINT job`); err != nil {
				fail(fmt.Errorf("sqlite: savepoint: %w", err))
				return
			}
		}
		if errs[i] = run(j, tx); errs[i] != nil {
			if !savepoints {
				break // the ROLLBACK below undoes it
			}
			if _, err := tx.Exec(`ROLLBACK TO job`); err != nil {
				// SQLite already rolled the whole transaction back (an
				// I/O error, a full disk): nothing of this batch holds.
				fail(fmt.Errorf("sqlite: rollback to savepoint: %w (after %v)", err, errs[i]))
				return
			}
		} else {
			ran++
		}
		if savepoints {
			if _, err := tx.Exec(`RELEASE job`); err != nil {
				fail(fmt.Errorf("sqlite: release savepoint: %w", err))
				return
			}
		}
	}
	end := `COMMIT`
	if ran == 0 {
		end = `ROLLBACK` // nothing to make durable: spare the fsync
	}
	if _, err := tx.Exec(end); err != nil {
		fail(fmt.Errorf("sqlite: %s: %w", end, err))
		return
	}
	if end == `ROLLBACK` {
		for i, j := range batch {
			j.answer(errs[i])
		}
		return
	}
	if ran > 0 {
		db.commits.Add(1)
		db.written.Add(uint64(ran))
	}
	db.syncs.await() // one sync in flight at a time (syncPipe)
	db.syncs.hand(committed{jobs: slices.Clone(batch), errs: errs})
}

// begin begins the write transaction and brings the queue index up to
// date with the database (another process may have written).
func (t *writeTx) begin() error {
	if _, err := t.Exec(`BEGIN IMMEDIATE`); err != nil {
		return fmt.Errorf("sqlite: begin: %w", err)
	}
	if err := t.queues.prepare(t); err != nil {
		return fmt.Errorf("sqlite: queue index: %w", err)
	}
	return nil
}

// restart rolls back everything the transaction has done and begins it
// again.
func (t *writeTx) restart() error {
	t.Exec(`ROLLBACK`) // fails harmlessly when SQLite already rolled back
	return t.begin()
}

// run calls the job's function, turning a panic into its error: a bug in
// one write must not stop the committer and hang every later writer.
func run(j *job, tx *writeTx) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("sqlite: write panicked: %v", p)
		}
	}()
	if j.fn == nil { // an AddNotifications batch on its own
		errs, err := storeAdds(tx, []*addJob{j.add})
		if err != nil {
			return err
		}
		return errs[0]
	}
	return j.fn(tx)
}
