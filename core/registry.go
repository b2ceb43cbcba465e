package core

import "context"

// Registry holds what changes rarely and must survive everything: apps and
// their keys, users, and grants. Admin pages and the CLI write it through
// the Router; the Router reads it on connects (cached, see grantCache and
// appCache). core/sqlite implements it on one node; a cluster implements
// it on PostgreSQL, one row per app, user and grant.
//
// Contract, for every implementation:
//   - Every method is safe for concurrent use, and a write is durable when
//     it returns nil: a crash after that loses nothing.
//   - A missing row is ErrNotFound (bare or wrapped); a write that breaks a
//     uniqueness rule is ErrConflict.
//   - Reads see every write that returned before they began (read your
//     writes across goroutines; in a cluster, across nodes).
//   - Grant is atomic: two concurrent calls for the same (user, app,
//     userstring) end with one PUID, and both callers get it.
//   - RevokeGrant deletes the grant. A registry that holds the queues too
//     (core/sqlite, memstore) deletes the PUID's waiting status update and
//     queued notifications in the same step; the Router then calls
//     NotificationQueues.DeletePUIDNotifications, which empties the
//     queues that live elsewhere (a cluster's).
type Registry interface {
	// CreateApp inserts a, assigning a.ID when it is zero.
	CreateApp(ctx context.Context, a *App) error
	App(ctx context.Context, id AppID) (*App, error)
	// Apps lists the apps whose owner is ownerEmail, or every app when it
	// is "", by id.
	Apps(ctx context.Context, ownerEmail string) ([]*App, error)
	// UpdateApp writes every field of a but ID and CreatedAt.
	UpdateApp(ctx context.Context, a *App) error

	// UpsertUser inserts u, or updates the email of the user with u.ID; an
	// empty email keeps the stored one, a zero CreatedAt means now.
	UpsertUser(ctx context.Context, u User) error
	User(ctx context.Context, id string) (*User, error)

	// Grant returns the grant of (user, app, userString), creating it with
	// newPUID when there is none; created says which.
	Grant(ctx context.Context, userID string, app AppID, userString string, newPUID string) (g *Grant, created bool, err error)
	GrantByPUID(ctx context.Context, puid string) (*Grant, error)
	// UserGrants lists the user's grants by app, then creation time.
	UserGrants(ctx context.Context, userID string) ([]*Grant, error)
	// RevokeGrant deletes the grant (and, see above, what is queued under
	// its PUID where the registry holds the queues).
	RevokeGrant(ctx context.Context, puid string) error

	// Ping returns nil while the registry answers (GET /healthz); its
	// error says what failed.
	Ping(ctx context.Context) error
}
