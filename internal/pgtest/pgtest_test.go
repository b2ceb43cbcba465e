package pgtest_test

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/presence-service/presence/internal/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Run(m)) }

// Each test gets its own empty database on a real server, which answers
// SQL and keeps what was written in it.
func TestDatabaseIsFreshAndReal(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a, b := pgtest.Database(t), pgtest.Database(t)
	if a == b {
		t.Fatalf("two tests share database %s", a)
	}
	ca, err := pgx.Connect(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	defer ca.Close(ctx)
	if _, err := ca.Exec(ctx, `CREATE TABLE t (x int); INSERT INTO t VALUES (42)`); err != nil {
		t.Fatal(err)
	}
	var version string
	if err := ca.QueryRow(ctx, `SHOW server_version`).Scan(&version); err != nil {
		t.Fatal(err)
	}
	t.Logf("PostgreSQL %s", version)

	cb, err := pgx.Connect(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	defer cb.Close(ctx)
	var n int
	if err := cb.QueryRow(ctx, `SELECT count(*) FROM pg_tables WHERE tablename = 't'`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Fatalf("the second database sees the first one's table")
	}
}

// A restart of the server keeps what was committed; connections made
// before it fail, new ones succeed.
func TestLocalRestartKeepsData(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s := pgtest.Local(t)
	db := pgtest.Database(t)
	c, err := pgx.Connect(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Exec(ctx, `CREATE TABLE t (x int); INSERT INTO t VALUES (7)`); err != nil {
		t.Fatal(err)
	}
	if err := s.StopServer(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Exec(ctx, `SELECT 1`); err == nil {
		t.Fatal("a connection to a stopped server still answers")
	}
	c.Close(ctx)
	if err := s.Restart(); err != nil {
		t.Fatal(err)
	}
	c, err = pgx.Connect(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	var x int
	if err := c.QueryRow(ctx, `SELECT x FROM t`).Scan(&x); err != nil || x != 7 {
		t.Fatalf("after restart: x = %d, %v; want 7", x, err)
	}
}
