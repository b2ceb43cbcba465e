package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/mattn/go-sqlite3"

	presence "github.com/presence-service/presence"
	"github.com/presence-service/presence/core"
	"github.com/presence-service/presence/core/sqlreg"
)

var (
	_ core.Registry           = (*DB)(nil)
	_ core.NotificationQueues = (*DB)(nil)
	_ core.StatusQueue        = (*DB)(nil)
	_ core.CommitCounter      = (*DB)(nil)
)

// ErrClosed is returned by every write called after Close.
var ErrClosed = errors.New("sqlite: database closed")

// busyTimeout is how long a connection waits for a lock held by another
// process (the CLI touching the same file while the server runs) before it
// gives up with SQLITE_BUSY.
const busyTimeout = 5 * time.Second

// DB is a Presence database on one SQLite file: the registry, the
// notification queues and the status queue of one node.
type DB struct {
	// Now is the clock for the times the store sets itself (created_at of
	// apps, users and grants; applied_at of migrations). It is read in the
	// caller's goroutine, never the committer's, so a test may swap it
	// between calls. Default: time.Now.
	Now func() time.Time

	sqlreg.Reads // App, Apps, User, GrantByPUID, UserGrants, on rdb

	path string
	rdb  *sqlx.DB // read-only pool, several connections
	wdb  *sqlx.DB // the one writer connection; only the committer uses it

	mu     sync.RWMutex // guards: closed, and sends on jobs (held for reading)
	closed bool
	jobs   chan *job     // to the committer; closed by Close
	done   chan struct{} // closed when the committer has answered its last job

	queues *queueIndex // the notification queues (queues.go)
	wal    *walSyncer  // fdatasync of the WAL (walsync.go), syncLoop's alone
	syncs  *syncPipe   // from the committer to syncLoop

	commits atomic.Uint64 // transactions committed
	written atomic.Uint64 // jobs that those commits made durable
}

// CommitStats reports how many transactions the committer has committed
// and how many writes they carried: written/commits is the mean group
// size, for /metrics.
func (db *DB) CommitStats() (commits, written uint64) {
	return db.commits.Load(), db.written.Load()
}

// Open opens (creating it and its folder if need be) the database at path,
// brings its schema up to date and starts the committer.
func Open(path string) (*DB, error) {
	if path == "" || path == ":memory:" {
		// Two pools on ":memory:" would be two different databases.
		return nil, fmt.Errorf("sqlite: open: need a file path, got %q", path)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("sqlite: open: %w", err)
	}
	db := &DB{
		Now:    time.Now,
		path:   path,
		jobs:   make(chan *job, 1024),
		queues: newQueueIndex(),
		wal:    &walSyncer{path: path + "-wal"},
		done:   make(chan struct{}),
	}

	var err error
	// The writer sets the journal mode (persistent in the file) before any
	// reader opens.
	writer := url.Values{
		"_journal_mode": {"WAL"},
		"_synchronous":  {"NORMAL"}, // and the committer syncs the WAL itself (walsync.go)
		"_cache_size":   {"-65536"}, // 64 MiB: queues and indexes stay in memory
	}
	db.wdb, err = sqlx.Open("sqlite3", dsn(path, writer))
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	db.wdb.SetMaxOpenConns(1)
	db.wdb.SetMaxIdleConns(1)
	db.wdb.SetConnMaxLifetime(0)
	db.wdb.SetConnMaxIdleTime(0)
	// The committer holds the one writer connection for its whole life.
	// Its commits checkpoint the WAL as SQLite does by default, once it
	// passes 1000 pages (wal_autocheckpoint).
	conn, err := db.wdb.Connx(context.Background())
	if err == nil {
		// Before anything reads the tables: a damaged file is refused
		// whole, not served half.
		if err = quickCheck(context.Background(), path, conn); err != nil {
			conn.Close()
		}
	}
	if err != nil {
		db.wdb.Close()
		var d *DamagedError
		if errors.As(damaged(path, err), &d) {
			return nil, d
		}
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}

	db.rdb, err = sqlx.Open("sqlite3", dsn(path, url.Values{"_query_only": {"true"}}))
	if err != nil {
		conn.Close()
		db.wdb.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	db.Reads = sqlreg.NewReads(db.rdb, "sqlite")
	n := max(4, runtime.GOMAXPROCS(0))
	db.rdb.SetMaxOpenConns(n)
	db.rdb.SetMaxIdleConns(n)
	db.rdb.SetConnMaxIdleTime(0)

	go db.commitLoop(conn)

	err = db.Migrate(context.Background())
	if err == nil {
		err = checkSchema(context.Background(), path, db.rdb)
	}
	if err != nil {
		db.Close()
		return nil, damaged(path, err)
	}
	return db, nil
}

// dsn builds the connection string: settings every connection needs, plus
// extra ones.
func dsn(path string, extra url.Values) string {
	v := url.Values{
		"_foreign_keys":    {"1"},
		"_busy_timeout":    {fmt.Sprint(busyTimeout.Milliseconds())},
		"_stmt_cache_size": {"64"}, // the driver keeps the statements with arguments prepared
	}
	for k, vs := range extra {
		v[k] = vs
	}
	return "file:" + (&url.URL{Path: path}).EscapedPath() + "?" + v.Encode()
}

// Path is the database file's path.
func (db *DB) Path() string { return db.path }

// Close waits for the writes already handed to the committer, then closes
// both pools. Later writes fail with ErrClosed (reads with database/sql's
// "database is closed").
func (db *DB) Close() error {
	db.mu.Lock()
	if db.closed {
		db.mu.Unlock()
		return nil
	}
	db.closed = true
	close(db.jobs)
	db.mu.Unlock()

	<-db.done
	return errors.Join(db.rdb.Close(), db.wdb.Close())
}

// Ping checks what GET /healthz claims (PROTOCOL §9): that the file
// answers a read, and that a write commits and is synced, through the
// committer as every write is (so a wedged committer fails it too). The
// write rewrites the newest schema_migrations row as it is. The error
// names the part that failed: "sqlite read: …" or "sqlite write: …".
func (db *DB) Ping(ctx context.Context) error {
	var version int
	if err := db.rdb.GetContext(ctx, &version, `SELECT MAX(version) FROM schema_migrations`); err != nil {
		return fmt.Errorf("sqlite read: %w", err)
	}
	err := db.write(ctx, func(tx *writeTx) error {
		res, err := tx.Exec(`UPDATE schema_migrations SET applied_at = applied_at WHERE version = ?`, version)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return fmt.Errorf("schema_migrations: no row of version %d", version)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("sqlite write: %w", err)
	}
	return nil
}

// Migrate brings the schema to presence.SchemaVersion: it upgrades the
// tables of an older version (upgrade), applies presence.Schema and
// records the version. Running it again does nothing.
// Open calls it; `presence migrate` may too.
func (db *DB) Migrate(ctx context.Context) error {
	now := db.now() // read here: only callers' goroutines read db.Now
	err := db.write(ctx, func(tx *writeTx) error {
		if _, err := tx.Exec(`CREATE TABLE IF NOT EXISTS schema_migrations (
			version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)`); err != nil {
			return err
		}
		var have int
		if err := tx.Get(&have, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`); err != nil {
			return err
		}
		if have >= presence.SchemaVersion {
			return nil
		}
		// Tables that changed shape are rebuilt first (migrate.go); the
		// schema then adds whatever is new.
		if err := upgrade(tx, have); err != nil {
			return err
		}
		if _, err := tx.Exec(presence.Schema); err != nil {
			return err
		}
		if _, err := tx.Exec(`INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)`,
			presence.SchemaVersion, now.UnixNano()); err != nil {
			return err
		}
		// The queue index could not be loaded before the tables were
		// there (queueIndex.prepare); it is now, from this transaction.
		return tx.queues.load(tx)
	})
	if err != nil {
		return fmt.Errorf("sqlite: migrate to version %d: %w", presence.SchemaVersion, err)
	}
	return nil
}

func (db *DB) now() time.Time {
	if db.Now != nil {
		return db.Now()
	}
	return time.Now()
}

// The queues store times as the registry does (core/sqlreg).
func nanos(t time.Time) int64             { return sqlreg.Nanos(t) }
func fromNanos(n sql.NullInt64) time.Time { return sqlreg.FromNanos(n) }

// notFound wraps core.ErrNotFound with what was missing.
func notFound(format string, args ...any) error {
	return fmt.Errorf("%s: %w", fmt.Sprintf(format, args...), core.ErrNotFound)
}

// mapErr turns driver errors that callers need to match into the core
// sentinels: a duplicate key is core.ErrConflict, a dangling reference is
// core.ErrNotFound, no row is core.ErrNotFound.
func mapErr(err error, what string) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, sql.ErrNoRows) {
		return notFound("%s", what)
	}
	var se sqlite3.Error
	if errors.As(err, &se) {
		switch se.ExtendedCode {
		case sqlite3.ErrConstraintUnique, sqlite3.ErrConstraintPrimaryKey:
			return fmt.Errorf("%s: %w: %v", what, core.ErrConflict, err)
		case sqlite3.ErrConstraintForeignKey:
			return fmt.Errorf("%s: %w: %v", what, core.ErrNotFound, err)
		}
	}
	return fmt.Errorf("%s: %w", what, err)
}
