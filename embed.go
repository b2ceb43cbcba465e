package presence

import _ "embed"

// Schema is schema.sql, the one source of truth for the SQLite tables.
//
//go:embed schema.sql
var Schema string

// SchemaVersion is recorded in schema_migrations when Schema is applied.
// Bump it with every change to schema.sql.
const SchemaVersion = 4

// DefaultConfig is presence.toml, the documented default configuration.
//
//go:embed presence.toml
var DefaultConfig string

// Version is the release, set at link time with
// -ldflags "-X github.com/presence-service/presence.Version=v1.2.3".
var Version = "dev"
