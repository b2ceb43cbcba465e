package sqlite

import (
	"fmt"
	"os"
	"sync/atomic"
	"syscall"
	"time"
)

// The writer connection runs with synchronous=NORMAL, and each commit is
// made durable by fdatasync(2) of the WAL file (walSyncer) before anyone
// is answered; the sync runs on its own goroutine (syncLoop) while the
// committer runs the next transaction's statements.
//
// Why: the SQLite that go-sqlite3 compiles in is built without
// HAVE_FDATASYNC, so under synchronous=FULL every commit ended in fsync(2),
// which also writes the WAL's inode (its mtime changes at every write) and
// so waits for a journal commit of the file system. Measured on this
// machine's ext4: COMMIT took about 3 ms, 70 % of the committer's time in
// presence-bench's single-item notify run. fdatasync skips the inode when
// only data changed (the WAL is rewritten in place once it has grown).
//
// The guarantee is FULL's: in WAL mode a transaction is durable once its
// frames, commit frame included, are on disk, and fdatasync puts every
// byte written to the file so far there, whoever wrote it (the page cache
// is the inode's). NORMAL keeps SQLite's own ordering where it matters:
// the WAL is synced before each checkpoint copies from it, and the
// database file after. A process crash loses nothing either way (the
// page cache survives it; crash_test.go); a power loss now loses only
// writes that no caller was told had succeeded.
type walSyncer struct {
	path string
	f    *os.File
	ino  uint64

	syncs atomic.Uint64 // for the tests
}

// sync makes everything written to the WAL file so far durable. The file
// is opened the first time, and again if it is no longer the file at path
// (SQLite deletes the WAL when its last connection closes, which the
// server's open pools never let happen; this is belt and braces).
func (w *walSyncer) sync() error {
	st, err := os.Stat(w.path)
	if err != nil {
		return fmt.Errorf("sqlite: sync wal: %w", err)
	}
	ino := st.Sys().(*syscall.Stat_t).Ino
	if w.f == nil || ino != w.ino {
		if w.f != nil {
			w.f.Close()
		}
		if w.f, err = os.OpenFile(w.path, os.O_RDWR, 0); err != nil {
			w.f = nil
			return fmt.Errorf("sqlite: sync wal: %w", err)
		}
		w.ino = ino
	}
	if err := syscall.Fdatasync(int(w.f.Fd())); err != nil {
		return fmt.Errorf("sqlite: sync wal: %w", err)
	}
	w.syncs.Add(1)
	return nil
}

func (w *walSyncer) close() {
	if w.f != nil {
		w.f.Close()
		w.f = nil
	}
}

// committed is one commit's answers, given once the commit is durable.
type committed struct {
	jobs []*job
	errs []error
}

// syncPipe hands commits from the committer to syncLoop, one at a time:
// while the last commit is synced, the jobs of the next queue up, and the
// committer waits for that sync before it takes them (commitLoop).
// (Running the next transaction's statements during the sync, and waiting
// only before its COMMIT, left the jobs that arrived meanwhile for the
// commit after: measured with presence-bench notify, single POSTs were
// 12 % fewer, with groups of 14 instead of 19.) Measured (go test -bench 'AddNotification(SingleFullQueues|Batch100Parallel)$'
// -benchtime 30000x, two runs each, busy machine): syncing inside the
// committer gave 73-88k items/s in batches and 16-34k single items/s;
// one sync in flight 85-116k and 25-38k. Letting several syncs queue
// instead made groups small and nearly doubled the pages written per
// single item (0.36 → 0.66): one in flight keeps groups as large as a
// sync is long.
//
// That wait is for commits shorter than a sync. A commit of several
// batches of 100 takes longer than the sync before it (milliseconds
// against about half of one), and there the committer runs it during
// that sync and waits only before handing it over: syncs then follow
// each other with no commit between them. The committer compares its
// last commit with the last sync to choose. Measured, interleaved
// presence-bench notify (-spawn -only presence, 7 rounds each): batches
// of 100 stored 90.6-100.6k items/s against 85.7-94.8k, 6 rounds of 7
// ahead; single POSTs did not move (14.3-16.7k against 14.2-15.5k).
//
// The answers are given by one more goroutine (answerLoop), in commit
// order: an answer may be an HTTP response written to a socket
// (job.done), and a group of them took as long as the sync itself.
// Measured with presence-bench notify, single POSTs, in an execution
// trace: answering on the syncing goroutine kept it busy 2.4 s of 3 s
// (fdatasync 1.4 s, the answers' writes 0.7 s), and the committer waited
// for it 46 % of the time.
type syncPipe struct {
	in       chan committed
	synced   chan struct{}  // a token per sync done
	answers  chan committed // synced commits, for answerLoop
	done     chan struct{}  // answerLoop has answered the last
	inflight bool           // the committer's: a commit handed, its token not taken

	lastSync   atomic.Int64  // syncLoop's: how long the last sync took, ns
	lastCommit time.Duration // the committer's: how long its last commit took
}

// commitsOutlastSyncs reports whether the last commit took longer than
// the last sync.
func (p *syncPipe) commitsOutlastSyncs() bool {
	return int64(p.lastCommit) > p.lastSync.Load()
}

func newSyncPipe() *syncPipe {
	return &syncPipe{
		in: make(chan committed, 1), synced: make(chan struct{}, 1),
		answers: make(chan committed, 64), done: make(chan struct{}),
	}
}

// hand gives a commit's answers to syncLoop.
func (p *syncPipe) hand(c committed) {
	p.in <- c
	p.inflight = true
}

// await waits until the commit last handed is durable (its answers may
// still be being given).
func (p *syncPipe) await() {
	if p.inflight {
		<-p.synced
		p.inflight = false
	}
}

// stop lets syncLoop and answerLoop answer the last commit and end.
func (p *syncPipe) stop() {
	close(p.in)
	<-p.done
}

// syncLoop syncs the WAL after each commit handed to it, then has its
// jobs answered: their own error, or the sync's. Committed but not
// durable, a write fails: no one hears "ok" for what a power loss could
// undo. (The queue index keeps such writes: it holds what the database
// holds.)
func (db *DB) syncLoop() {
	p := db.syncs
	defer close(p.answers)
	defer db.wal.close()
	for c := range p.in {
		began := time.Now()
		err := db.wal.sync()
		p.lastSync.Store(int64(time.Since(began)))
		p.synced <- struct{}{} // the committer may go on
		if err != nil {
			for i, e := range c.errs {
				if e == nil {
					c.errs[i] = err
				}
			}
		}
		p.answers <- c
	}
}

// answerLoop gives the synced commits' jobs their answers, in order.
func (db *DB) answerLoop() {
	p := db.syncs
	defer close(p.done)
	for c := range p.answers {
		for i, j := range c.jobs {
			j.answer(c.errs[i])
		}
	}
}
