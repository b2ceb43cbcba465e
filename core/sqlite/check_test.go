package sqlite_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/presence-service/presence/core/sqlite"
)

// newFile makes a database file at a fresh path, with the schema, and
// closes it.
func newFile(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "data", "presence.db")
	db, err := sqlite.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

// alter runs statements on the file behind the store's back, as an
// operator with the sqlite3 shell (or a bad disk) would.
func alter(t *testing.T, path string, stmts ...string) {
	t.Helper()
	raw, err := sqlx.Open("sqlite3", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	for _, s := range stmts {
		if _, err := raw.Exec(s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

// wantDamaged opens path and wants it refused with a message that names
// the file, says what is wrong (each of what) and how to restore it.
func wantDamaged(t *testing.T, path string, what ...string) {
	t.Helper()
	db, err := sqlite.Open(path)
	if err == nil {
		db.Close()
		t.Fatalf("Open(%s) = nil error, want it refused", path)
	}
	var d *sqlite.DamagedError
	if !errors.As(err, &d) {
		t.Fatalf("Open: %v (%T), want a *sqlite.DamagedError", err, err)
	}
	msg := err.Error()
	for _, w := range append(what, path, "restore "+path+" from a backup", "move it away") {
		if !strings.Contains(msg, w) {
			t.Errorf("Open: %q\nwant it to say %q", msg, w)
		}
	}
}

func TestOpen_RefusesDamagedPages(t *testing.T) {
	path := newFile(t)
	alter(t, path, `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 5000)
		INSERT INTO users (id, email, created_at) SELECT 'user' || i, printf('%.200c', 'x') || i, i FROM n`)
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	junk := make([]byte, 4*4096)
	for i := range junk {
		junk[i] = byte(i*7 + 3)
	}
	if _, err := f.WriteAt(junk, 100*4096); err != nil { // pages 101-104, inside users
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	wantDamaged(t, path, "quick_check")
}

func TestOpen_RefusesAFileThatIsNoDatabase(t *testing.T) {
	path := newFile(t)
	if err := os.WriteFile(path, []byte(strings.Repeat("not a database ", 1000)), 0o600); err != nil {
		t.Fatal(err)
	}
	wantDamaged(t, path)
}

func TestOpen_RefusesMissingTables(t *testing.T) {
	for _, table := range []string{"apps", "users", "notifications"} {
		t.Run(table, func(t *testing.T) {
			path := newFile(t)
			alter(t, path, `DROP TABLE `+table)
			wantDamaged(t, path, "lacks table "+table+" of schema.sql")
		})
	}
}

func TestOpen_RefusesAMissingColumn(t *testing.T) {
	path := newFile(t)
	alter(t, path, `ALTER TABLE apps DROP COLUMN description`)
	wantDamaged(t, path, "lacks column apps.description of schema.sql")
}

func TestOpen_ReopensASoundFile(t *testing.T) {
	path := newFile(t)
	db := mustOpenPath(t, path)
	MustApp(t, db, "owner@example.com")
}

func TestPing_AnswersWhileTheStoreReadsAndWrites(t *testing.T) {
	db := MustOpenDB(t)
	if err := db.Ping(context.Background()); err != nil {
		t.Fatalf("Ping: %v", err)
	}
}

// A store that still reads but cannot write is not healthy: here another
// process holds the write lock past the check's deadline.
func TestPing_NamesAWriteThatFails(t *testing.T) {
	db := MustOpenDB(t)
	raw, err := sqlx.Open("sqlite3", "file:"+db.Path())
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	conn, err := raw.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(context.Background(), `BEGIN IMMEDIATE`); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	err = db.Ping(ctx)
	cancel()
	if err == nil || !strings.HasPrefix(err.Error(), "sqlite write: ") {
		t.Errorf("Ping with the write lock held elsewhere: %v, want an error that starts \"sqlite write: \"", err)
	}
	if _, err := conn.ExecContext(context.Background(), `ROLLBACK`); err != nil {
		t.Fatal(err)
	}
	if err := db.Ping(context.Background()); err != nil {
		t.Errorf("Ping once the lock is released: %v", err)
	}
}
