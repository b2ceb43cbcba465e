package sqlite

import (
	"fmt"
	"os"
	"sync/atomic"
	"syscall"
)

// The writer connection runs with synchronous=NORMAL, and the committer
// makes each commit durable itself, with fdatasync(2) on the WAL file
// (walSyncer), before it answers anyone.
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
