package core

import (
	"context"
	"maps"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaxUserStringRunes bounds how a user appears to an app.
const MaxUserStringRunes = 128

// CheckUserString validates the "appear online as" string of a grant.
func CheckUserString(s string) error {
	if s == "" || !utf8.ValidString(s) || utf8.RuneCountInString(s) > MaxUserStringRunes ||
		strings.IndexFunc(s, unicode.IsControl) >= 0 {
		return Errorf(ErrnoInvalidField, "id: 1 to %d printable characters", MaxUserStringRunes)
	}
	return nil
}

// Grant lets app see the user's status as userString: the PUID of
// (user, app, userString) is created, or the existing one returned. A
// device of the user that already shows the app a status shows it to the
// new PUID at once.
func (r *Router) Grant(ctx context.Context, who Identity, id AppID, userString string) (*Grant, error) {
	if err := CheckUserString(userString); err != nil {
		return nil, err
	}
	app, err := r.App(ctx, id)
	if err != nil {
		return nil, err
	}
	if app.State != AppVerified && app.State != AppActive {
		return nil, &Error{Errno: ErrnoAppInactive, Reason: "this app is not open for grants"}
	}
	if err := r.reg.UpsertUser(ctx, User{ID: who.Subject, Email: who.Email, CreatedAt: r.opts.Now()}); err != nil {
		return nil, err
	}
	g, created, err := r.reg.Grant(ctx, who.Subject, id, userString, NewPUID())
	if err != nil || !created {
		return g, err
	}
	err = r.bus.Invalidate(ctx, Invalidation{Kind: GrantAdded, App: id, User: who.Subject, PUID: g.PUID})
	return g, err
}

// Revoke ends a grant: the app is told a last offline for the PUID, which
// then stops working everywhere (probes, notifications, its queue).
// Only the grant's user may revoke it (userID must match).
func (r *Router) Revoke(ctx context.Context, userID, puid string) error {
	g, err := r.reg.GrantByPUID(ctx, puid)
	if err != nil {
		return err
	}
	if g.UserID != userID {
		return ErrNotFound // someone else's PUID does not exist for this user
	}
	if err := r.reg.RevokeGrant(ctx, puid); err != nil {
		return err
	}
	if err := r.queues.DeletePUIDNotifications(ctx, puid); err != nil {
		return err
	}
	err = r.bus.Invalidate(ctx, Invalidation{Kind: GrantRevoked, App: g.AppID, User: g.UserID, PUID: puid})
	// Every node has stopped routing to the PUID: nothing can follow the
	// last offline.
	r.publish(g.AppID, StatusUpdate{PUID: puid, Status: Offline, At: r.opts.Now()})
	return err
}

// withPUID returns a copy of grants with puid added for app. The map it
// replaces may be shared with the grant cache, so it is never written.
func withPUID(grants map[AppID][]string, app AppID, puid string) map[AppID][]string {
	out := maps.Clone(grants)
	if out == nil {
		out = make(map[AppID][]string, 1)
	}
	out[app] = append(slices.Clip(out[app]), puid)
	return out
}

// withoutPUID returns a copy of grants without puid for app.
func withoutPUID(grants map[AppID][]string, app AppID, puid string) map[AppID][]string {
	out := maps.Clone(grants)
	var kept []string
	for _, v := range out[app] {
		if v != puid {
			kept = append(kept, v)
		}
	}
	if len(kept) == 0 {
		delete(out, app)
	} else {
		out[app] = kept
	}
	return out
}
