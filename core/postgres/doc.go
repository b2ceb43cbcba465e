// Package postgres is the Registry of a Presence cluster (PROTOCOL §10):
// apps and their keys, users and grants, in PostgreSQL, shared by every
// node. It implements core.Registry through sqlx over pgx's database/sql
// driver.
//
// The tables are those of schema.sql, the one schema source: Open renders
// its registry tables (users, apps, grants, schema_migrations) into
// PostgreSQL's dialect (schema.go) and applies them, as core/sqlite does,
// recording presence.SchemaVersion. The queues (waiting status updates,
// live notifications) are not here: in a cluster they live in JetStream
// (core/jetstream), so RevokeGrant deletes the grant row only, and the
// caller empties the PUID's queues there.
//
// Times are stored as Unix nanoseconds (BIGINT), as in SQLite, so that the
// two databases hold the same values.
package postgres
