package sqlite

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/presence-service/presence/core"
)

// TestPragmas checks the settings durability and integrity rest on, on
// the connections that really run the statements.
func TestPragmas(t *testing.T) {
	ctx := context.Background()
	db, err := Open(filepath.Join(t.TempDir(), "presence.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()

	var mode string
	var sync, fk, busy, autockpt int
	err = db.write(ctx, func(tx *writeTx) error {
		for _, p := range []struct {
			pragma string
			dest   any
		}{{"journal_mode", &mode}, {"synchronous", &sync}, {"foreign_keys", &fk}, {"busy_timeout", &busy}, {"wal_autocheckpoint", &autockpt}} {
			if err := tx.Get(p.dest, `PRAGMA `+p.pragma); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// synchronous 1 is NORMAL: the committer syncs the WAL itself
	// (TestCommit_SyncsWAL).
	// wal_autocheckpoint 1000 is SQLite's default: the writer's commits
	// checkpoint (docs/decisions.md, "SQLite").
	if mode != "wal" || sync != 1 || fk != 1 || busy != int(busyTimeout.Milliseconds()) || autockpt != 1000 {
		t.Fatalf("writer: journal_mode=%s synchronous=%d foreign_keys=%d busy_timeout=%d wal_autocheckpoint=%d", mode, sync, fk, busy, autockpt)
	}

	var ro int
	if err := db.rdb.GetContext(ctx, &ro, `PRAGMA query_only`); err != nil || ro != 1 {
		t.Fatalf("reader: query_only=%d, %v", ro, err)
	}
	if _, err := db.rdb.ExecContext(ctx, `DELETE FROM apps`); err == nil {
		t.Fatal("a reader connection could write")
	}
}

// TestCommit_SyncsWAL: a write returns only after an fdatasync of the
// file that is the WAL at that moment; a write that commits nothing
// (a failed lone job) syncs nothing.
func TestCommit_SyncsWAL(t *testing.T) {
	ctx := context.Background()
	db, _, _ := openQueues(t)
	before := db.wal.syncs.Load()
	if err := db.UpsertUser(ctx, core.User{ID: "alice"}); err != nil {
		t.Fatal(err)
	}
	if n := db.wal.syncs.Load() - before; n != 1 {
		t.Fatalf("%d syncs for one commit, want 1", n)
	}
	err := db.write(ctx, func(tx *writeTx) error {
		var a, b syscall.Stat_t
		if err := syscall.Fstat(int(db.wal.f.Fd()), &a); err != nil {
			return err
		}
		if err := syscall.Stat(db.Path()+"-wal", &b); err != nil {
			return err
		}
		if a.Ino != b.Ino {
			return fmt.Errorf("synced inode %d, the WAL is %d", a.Ino, b.Ino)
		}
		return errors.New("roll back")
	})
	if err == nil || err.Error() != "roll back" {
		t.Fatal(err)
	}
	if n := db.wal.syncs.Load() - before; n != 1 {
		t.Fatalf("%d syncs after a rolled-back write, want still 1", n)
	}
}
