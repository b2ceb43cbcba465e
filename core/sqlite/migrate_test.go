package sqlite

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	presence "github.com/presence-service/presence"
	"github.com/presence-service/presence/core"
)

// TestMigrate_FromVersion1: a database written by version 1 of the schema
// (testdata/schema_v1.sql, as released) opens with its queues whole:
// the same items, in order, pending and ackable under their new ids.
func TestMigrate_FromVersion1(t *testing.T) {
	ctx := context.Background()
	path := writeOldVersion(t, 1, append(aliceGrant(),
		// v1 ids: 12 hex digits of milliseconds, then 22 random characters.
		`INSERT INTO notifications (seq, id, app_id, puid, user_id, message, action, created_at, expires_at) VALUES
			(3, '019ab0c0ffeeAAAAAAAAAAAAAAAAAAAAAA', 7, 'p-alice', 'alice', 'first', '', 1, 2),
			(9, '019ab0c0ffefBBBBBBBBBBBBBBBBBBBBBB', 7, 'p-alice', 'alice', 'second', '', 1, 2)`,
	)...)

	db, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var version int
	if err := db.rdb.Get(&version, `SELECT MAX(version) FROM schema_migrations`); err != nil || version != presence.SchemaVersion {
		t.Fatalf("version %d, %v; want %d", version, err, presence.SchemaVersion)
	}
	var indexes int
	if err := db.rdb.Get(&indexes, `SELECT COUNT(*) FROM sqlite_schema WHERE type = 'index' AND tbl_name = 'notifications' AND sql IS NOT NULL`); err != nil || indexes != 0 {
		t.Fatalf("%d indexes on notifications, %v; want none", indexes, err)
	}
	pend, err := db.PendingNotifications(ctx, "alice", nil)
	if err != nil || len(pend) != 2 || pend[0].Message != "first" || pend[1].Message != "second" {
		t.Fatalf("pending after the upgrade: %+v, %v", pend, err)
	}
	if !strings.HasPrefix(pend[0].ID, "000000000003AAAA") || !strings.HasPrefix(pend[1].ID, "000000000009BBBB") {
		t.Fatalf("ids %s, %s: want the seq, then the old random part", pend[0].ID, pend[1].ID)
	}
	if n, err := db.AckNotifications(ctx, "alice", []string{pend[0].ID, "019ab0c0ffefBBBBBBBBBBBBBBBBBBBBBB"}); err != nil || n != 1 {
		t.Fatalf("ack of a new id and an old one = %d, %v; want 1 (the old id is no longer known)", n, err)
	}
	ns, _, err := db.AddNotifications(ctx, 7, []core.NotificationInput{{PUID: "p-alice", Message: "third"}}, time.Now(), 0, 100)
	if err != nil || ns[0].ID[:12] != "00000000000a" {
		t.Fatalf("next item: %+v, %v; want seq 10", ns, err)
	}
	if err := db.Migrate(ctx); err != nil {
		t.Fatalf("migrating again: %v", err)
	}
}

// TestMigrate_FromVersion2 and 3: a database written by version 2 or 3
// (testdata/schema_v<v>.sql, as released), with items that a full queue
// dropped but that were not collected yet, opens with the same queue: the
// dropped rows are deleted with their tombstones.
func TestMigrate_FromVersion2(t *testing.T) {
	testMigrateTombstones(t, 2, `INSERT INTO notification_tombstones VALUES (1), (2), (8)`)
}

func TestMigrate_FromVersion3(t *testing.T) {
	testMigrateTombstones(t, 3, `INSERT INTO notification_tombstones VALUES (1, '[1]', 1), (8, '[2,8]', 2)`)
}

func testMigrateTombstones(t *testing.T, v int, tombstones string) {
	ctx := context.Background()
	path := writeOldVersion(t, v, append(aliceGrant(),
		`INSERT INTO notifications (seq, id, app_id, puid, user_id, message, action, created_at, expires_at) VALUES
			(1, '000000000001AAAAAAAAAAAAAAAAAAAAAA', 7, 'p-alice', 'alice', 'm1', '', 1, 9e18),
			(2, '000000000002AAAAAAAAAAAAAAAAAAAAAA', 7, 'p-alice', 'alice', 'm2', '', 1, 9e18),
			(3, '000000000003AAAAAAAAAAAAAAAAAAAAAA', 7, 'p-alice', 'alice', 'm3', '', 1, 9e18),
			(4, '000000000004AAAAAAAAAAAAAAAAAAAAAA', 7, 'p-alice', 'alice', 'm4', '', 1, 9e18)`,
		// m1 and m2 were dropped; the tombstone of seq 8 outlived a row
		// that a revoked grant took.
		tombstones,
	)...)

	db, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	var version int
	if err := db.rdb.Get(&version, `SELECT MAX(version) FROM schema_migrations`); err != nil || version != presence.SchemaVersion {
		t.Fatalf("version %d, %v; want %d", version, err, presence.SchemaVersion)
	}
	var rows []string
	if err := db.rdb.Select(&rows, `SELECT message FROM notifications ORDER BY seq`); err != nil || fmt.Sprint(rows) != "[m3 m4]" {
		t.Fatalf("rows after the upgrade: %v, %v; want [m3 m4]", rows, err)
	}
	pend, err := db.PendingNotifications(ctx, "alice", nil)
	if err != nil || len(pend) != 2 || pend[0].Message != "m3" || pend[1].Message != "m4" {
		t.Fatalf("pending after the upgrade: %+v, %v; want m3 m4", pend, err)
	}
	checkIndex(t, db, "upgraded")
	ns, sizes, err := db.AddNotifications(ctx, 7, []core.NotificationInput{{PUID: "p-alice", Message: "m9"}}, time.Now(), 0, 2)
	if err != nil || ns[0].ID[:12] != "000000000005" || sizes[0] != 2 {
		t.Fatalf("next item: %+v, %v, %v; want seq 5 in a queue of 2", ns, sizes, err)
	}
	if err := db.rdb.Select(&rows, `SELECT message FROM notifications ORDER BY seq`); err != nil || fmt.Sprint(rows) != "[m4 m9]" {
		t.Fatalf("rows after the cap: %v, %v; want [m4 m9]", rows, err)
	}
	checkIndex(t, db, "m3 dropped")
}

// writeOldVersion writes a database as version v of the schema left it
// (testdata/schema_v<v>.sql, as released, recorded as applied), with the
// rows of inserts, and returns its path.
func writeOldVersion(t *testing.T, v int, inserts ...string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "presence.db")
	schema, err := os.ReadFile(fmt.Sprintf("testdata/schema_v%d.sql", v))
	if err != nil {
		t.Fatal(err)
	}
	old, err := sqlx.Open("sqlite3", dsn(path, nil))
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	stmts := append([]string{string(schema), fmt.Sprintf(`INSERT INTO schema_migrations VALUES (%d, 0)`, v)}, inserts...)
	for _, q := range stmts {
		if _, err := old.Exec(q); err != nil {
			t.Fatalf("%.60s: %v", q, err)
		}
	}
	return path
}

// aliceGrant is the rows, the same in schema versions 1 and 2, of app 7
// and alice's grant to it (PUID p-alice), for writeOldVersion.
func aliceGrant() []string {
	return []string{
		`INSERT INTO apps (id, domain, name, owner_email, verification_key, created_at) VALUES (7, 'd', 'n', 'o', 'k', 0)`,
		`INSERT INTO users VALUES ('alice', 'a@example.com', 0)`,
		`INSERT INTO grants VALUES ('p-alice', 'alice', 7, 'S', 0)`,
	}
}
