package sqlite

import (
	"fmt"
	"os"
	"sync/atomic"
	"syscall"
)

// The writer connection runs with synchronous=NORMAL, and each commit is
// made durable by fdatasync(2) of the WAL file (walSyncer) before anyone
// is answered; the sync runs on its own goroutine (syncLoop) while the
// committer takes the next callers. Why not SQLite's
// synchronous=FULL: the go-sqlite3 build lacks HAVE_FDATASYNC, so FULL
// ends each commit in fsync(2), which also journals the WAL's inode, and
// holds the committer for it (docs/decisions.md, "SQLite").
//
// The guarantee is FULL's: in WAL mode a transaction is durable once its
// frames, commit frame included, are on disk, and fdatasync puts every
// byte written to the file so far there, whoever wrote it (the page cache
// is the inode's). NORMAL keeps SQLite's own ordering where it matters:
// the WAL is synced before each checkpoint copies from it, and the
// database file after. No caller hears "ok" for a write a power loss
// could undo (crash_test.go).
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
// at most one sync is in flight. While it runs, the next callers queue
// and join the next commit together (commitLoop), so a group is as large
// as a sync is long. The sync runs on its own goroutine, not the
// committer's (docs/decisions.md, "SQLite").
type syncPipe struct {
	in       chan committed
	synced   chan struct{} // a token per sync done
	done     chan struct{} // syncLoop has answered the last commit
	inflight bool          // the committer's: a commit handed, its token not taken
}

func newSyncPipe() *syncPipe {
	return &syncPipe{in: make(chan committed, 1), synced: make(chan struct{}, 1), done: make(chan struct{})}
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

// stop lets syncLoop answer the last commit and end.
func (p *syncPipe) stop() {
	close(p.in)
	<-p.done
}

// syncLoop syncs the WAL after each commit handed to it, then answers its
// jobs, in commit order: their own error, or the sync's. Committed but
// not durable, a write fails: no one hears "ok" for what a power loss
// could undo. (The queue index keeps such writes: it holds what the
// database holds.) Answers are sends on buffered channels: they never
// wait.
func (db *DB) syncLoop() {
	p := db.syncs
	defer close(p.done)
	defer db.wal.close()
	for c := range p.in {
		err := db.wal.sync()
		p.synced <- struct{}{} // the committer may go on
		for i, j := range c.jobs {
			if c.errs[i] == nil {
				c.errs[i] = err
			}
			j.answer(c.errs[i])
		}
	}
}
