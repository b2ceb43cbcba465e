// Package sqlreg is what the SQL registries (core/sqlite on one file,
// core/postgres for a cluster) share of the registry tables of schema.sql:
// how a row reads into core's types, how times are stored, and the
// registry's reads, which are the same statements on both (written with
// ? and rebound to the driver's placeholders). The writes stay in each
// store: SQLite's go through its one committer, PostgreSQL's need locks
// and retries of their own, and so their statements are run differently.
package sqlreg
