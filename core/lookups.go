package core

import "context"

// The Registry reads that edges need and the Router does not otherwise
// make: the admin pages' lists, read fresh (no cache) on every call.

// Apps lists the apps whose owner is ownerEmail, or every app when it is
// "", by id.
func (r *Router) Apps(ctx context.Context, ownerEmail string) ([]*App, error) {
	return r.reg.Apps(ctx, ownerEmail)
}

// UserGrants lists the user's grants, by app, then creation time.
func (r *Router) UserGrants(ctx context.Context, userID string) ([]*Grant, error) {
	return r.reg.UserGrants(ctx, userID)
}

// GrantByPUID returns the grant of puid, or ErrNotFound.
func (r *Router) GrantByPUID(ctx context.Context, puid string) (*Grant, error) {
	return r.reg.GrantByPUID(ctx, puid)
}
