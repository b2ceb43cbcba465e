// Package pgtest gives tests a real PostgreSQL: each test gets a fresh,
// empty database of its own, dropped when the test ends.
//
// Where the databases come from:
//   - PRESENCE_PG_URL set: the server it names (its role needs CREATEDB);
//   - otherwise a throwaway cluster of the test process's own (package
//     internal/pgserver, which the benchmark tool uses too): initdb
//     into a temporary folder, then the postgres of Debian's postgresql
//     package (found on PATH or under /usr/lib/postgresql/*/bin) listening
//     on a Unix socket only, in that folder. PostgreSQL refuses to run as
//     root, so under root the cluster belongs to the "postgres" account.
//     The server is started at the first Database call and stopped by Run
//     at the end of the test binary (and killed with the test process if
//     it dies first).
//
// The tests that need PostgreSQL run when PRESENCE_CLUSTER or
// PRESENCE_PG_URL is set. With PRESENCE_CLUSTER=1 (scripts/test.sh sets
// it, after installing postgresql when missing) a missing engine fails
// the test, never skips it; without either variable the tests skip, saying
// how to run them.
//
// A package using it runs its tests through Run:
//
//	func TestMain(m *testing.M) { os.Exit(pgtest.Run(m)) }
package pgtest
