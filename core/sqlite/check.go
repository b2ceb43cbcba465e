package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/jmoiron/sqlx"
	"github.com/mattn/go-sqlite3"

	presence "github.com/presence-service/presence"
)

// DamagedError is why Open refused a database file: it fails SQLite's
// PRAGMA quick_check, is no database at all, or lacks a table or column
// of schema.sql. A server on such a file would start half-broken (apps
// ignored, POSTs answered 500), so Open refuses it and says how to
// restore it; nothing is repaired or recreated behind the operator's back.
type DamagedError struct {
	Path    string
	Problem string // what is wrong, for a person
}

func (e *DamagedError) Error() string {
	return fmt.Sprintf("database %s is damaged: %s; restore %s from a backup, or move it away (with its -wal and -shm files) to start empty",
		e.Path, e.Problem, e.Path)
}

// damaged reports err as a damaged file when SQLite says the file is
// corrupt or not a database; other errors pass unchanged.
func damaged(path string, err error) error {
	var se sqlite3.Error
	if errors.As(err, &se) && (se.Code == sqlite3.ErrCorrupt || se.Code == sqlite3.ErrNotADB) {
		return &DamagedError{Path: path, Problem: se.Error()}
	}
	return err
}

// quickCheck runs PRAGMA quick_check on c: nil when SQLite finds the file
// sound, a *DamagedError quoting its first findings otherwise.
func quickCheck(ctx context.Context, path string, c *sqlx.Conn) error {
	var found []string
	if err := c.SelectContext(ctx, &found, `PRAGMA quick_check(5)`); err != nil {
		if d := damaged(path, err); d != err {
			return d
		}
		return fmt.Errorf("sqlite: quick_check of %s: %w", path, err)
	}
	if len(found) == 1 && found[0] == "ok" {
		return nil
	}
	return &DamagedError{Path: path, Problem: "quick_check: " + strings.Join(found, "; ")}
}

// checkSchema makes sure every table and column of schema.sql is in the
// file at path (read through rdb), once Migrate has had its chance to
// create them: a table or column missing then was removed by hand or by
// damage, and a server without it would fail request after request.
func checkSchema(ctx context.Context, path string, rdb *sqlx.DB) error {
	want, err := schemaColumns(ctx)
	if err != nil {
		return err
	}
	have, err := tableColumns(ctx, rdb)
	if err != nil {
		return damaged(path, fmt.Errorf("sqlite: read the schema of %s: %w", path, err))
	}
	var missing []string
	for _, table := range sortedKeys(want) {
		cols, ok := have[table]
		if !ok {
			missing = append(missing, "table "+table)
			continue
		}
		for _, col := range want[table] {
			if !slices.Contains(cols, col) {
				missing = append(missing, "column "+table+"."+col)
			}
		}
	}
	if len(missing) > 0 {
		return &DamagedError{Path: path, Problem: "it lacks " + strings.Join(missing, ", ") + " of schema.sql"}
	}
	return nil
}

// schemaColumns is the tables of presence.Schema and their columns, read
// from a database in memory that has just that schema.
func schemaColumns(ctx context.Context) (map[string][]string, error) {
	mem, err := sqlx.Open("sqlite3", ":memory:")
	if err != nil {
		return nil, err
	}
	defer mem.Close()
	mem.SetMaxOpenConns(1) // each connection to :memory: is its own database
	if _, err := mem.ExecContext(ctx, presence.Schema); err != nil {
		return nil, fmt.Errorf("sqlite: schema.sql: %w", err)
	}
	return tableColumns(ctx, mem)
}

// tableColumns lists the columns of every table of db, by table.
func tableColumns(ctx context.Context, db *sqlx.DB) (map[string][]string, error) {
	var rows []struct {
		Table  string `db:"tbl"`
		Column string `db:"col"`
	}
	err := db.SelectContext(ctx, &rows, `SELECT m.name AS tbl, c.name AS col
		FROM sqlite_schema m, pragma_table_info(m.name) c
		WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%'`)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return nil, err
	}
	cols := make(map[string][]string)
	for _, r := range rows {
		cols[r.Table] = append(cols[r.Table], r.Column)
	}
	return cols, nil
}

func sortedKeys(m map[string][]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
