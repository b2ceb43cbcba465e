package sqlite

import (
	"context"
	"path/filepath"
	"testing"
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
	var sync, fk, busy int
	err = db.write(ctx, func(tx *writeTx) error {
		for _, p := range []struct {
			pragma string
			dest   any
		}{{"journal_mode", &mode}, {"synchronous", &sync}, {"foreign_keys", &fk}, {"busy_timeout", &busy}} {
			if err := tx.Get(p.dest, `PRAGMA `+p.pragma); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// synchronous 2 is FULL: a commit that returned is on disk.
	if mode != "wal" || sync != 2 || fk != 1 || busy != int(busyTimeout.Milliseconds()) {
		t.Fatalf("writer: journal_mode=%s synchronous=%d foreign_keys=%d busy_timeout=%d", mode, sync, fk, busy)
	}

	var ro int
	if err := db.rdb.GetContext(ctx, &ro, `PRAGMA query_only`); err != nil || ro != 1 {
		t.Fatalf("reader: query_only=%d, %v", ro, err)
	}
	if _, err := db.rdb.ExecContext(ctx, `DELETE FROM apps`); err == nil {
		t.Fatal("a reader connection could write")
	}
}
