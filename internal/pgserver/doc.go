// Package pgserver starts a throwaway PostgreSQL: initdb into a temporary
// folder, then the postgres of Debian's postgresql package (found on PATH
// or under /usr/lib/postgresql/*/bin) listening on a Unix socket only, in
// that folder, with fsync off. Under root the cluster belongs to the
// "postgres" account, as PostgreSQL refuses to run as root.
//
// It imports no testing package: internal/pgtest wraps it for the tests,
// and cmd/presence-bench starts one for its cluster runs.
package pgserver
