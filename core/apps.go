package core

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// appCacheTTL is how long a looked-up app is trusted without asking the
// store again. Changes made through this router take effect at once;
// changes made by another process (the CLI) within this time.
//
// When the store cannot be read (PostgreSQL restarting), an app cached
// earlier is still used, however old: every change to an app's row is
// followed by an invalidation on the bus that drops the cached copy, and
// a node that may have missed one (its bus link dropped) drops them all,
// so a copy still cached is what the store says, and live traffic (keys
// of POSTs, channels, device connects) goes on without it.
const appCacheTTL = 2 * time.Second

type appCache struct {
	mu sync.Mutex // guards: m
	m  map[AppID]cachedApp
}

type cachedApp struct {
	app     *App
	fetched time.Time
}

// App returns the app with id (a cached copy: do not modify it). Unknown
// apps are *Error errno 44 wrapping ErrNotFound.
func (r *Router) App(ctx context.Context, id AppID) (*App, error) {
	now := r.opts.Now()
	r.cache.mu.Lock()
	c, ok := r.cache.m[id]
	r.cache.mu.Unlock()
	if ok && now.Sub(c.fetched) < appCacheTTL && now.Sub(c.fetched) >= 0 {
		return c.found()
	}
	a, err := r.reg.App(ctx, id)
	if err != nil && !errors.Is(err, ErrNotFound) {
		if ok {
			return c.found() // the store is away: see appCacheTTL
		}
		return nil, err
	}
	c = cachedApp{app: a, fetched: now}
	r.cache.mu.Lock()
	r.cache.m[id] = c
	r.cache.mu.Unlock()
	return c.found()
}

// found is the cached answer: the app, or errno 44 for one that the
// store did not have.
func (c cachedApp) found() (*App, error) {
	if c.app == nil {
		return nil, &Error{Errno: ErrnoUnknownUID, Reason: "unknown app", Err: ErrNotFound}
	}
	return c.app, nil
}

// forgetApp drops this node's cached copy of the app (Bus: AppChanged).
func (r *Router) forgetApp(id AppID) {
	r.cache.mu.Lock()
	delete(r.cache.m, id)
	r.cache.mu.Unlock()
}

// forgetAllApps drops every cached app (Bus: CachesLost).
func (r *Router) forgetAllApps() {
	r.cache.mu.Lock()
	clear(r.cache.m)
	r.cache.mu.Unlock()
}

// appChanged tells every node that the app's row changed, and to end its
// channels with closeWith unless that is 0.
func (r *Router) appChanged(ctx context.Context, id AppID, closeWith Errno) error {
	return r.bus.Invalidate(ctx, Invalidation{Kind: AppChanged, App: id, Close: closeWith})
}

// AuthenticateApp checks an app's API key in constant time: errno 44 for
// an unknown app, 41 for one not active, 40 for a wrong key.
func (r *Router) AuthenticateApp(ctx context.Context, id AppID, key string) (*App, error) {
	a, err := r.App(ctx, id)
	if err != nil {
		return nil, err
	}
	if a.KeyHash == nil || a.State != AppActive {
		return nil, &Error{Errno: ErrnoAppInactive}
	}
	if !a.CheckKey(key) {
		return nil, &Error{Errno: ErrnoBadKey}
	}
	return a, nil
}

// AppSecret returns an active app's API key, unsealed, for the XEP-0114
// handshake digest.
func (r *Router) AppSecret(ctx context.Context, id AppID) (*App, string, error) {
	a, err := r.App(ctx, id)
	if err != nil {
		return nil, "", err
	}
	if !a.Active() || a.KeySealed == nil {
		return a, "", &Error{Errno: ErrnoAppInactive}
	}
	if r.opts.Keys == nil {
		return a, "", errors.New("no keyring")
	}
	key, err := r.opts.Keys.Open(a.KeySealed)
	return a, key, err
}

// RegisterApp creates an unverified app owned by owner, with a fresh
// domain verification key.
func (r *Router) RegisterApp(ctx context.Context, owner, domain, name, description string) (*App, error) {
	domain, err := NormalizeDomain(domain)
	if err != nil {
		return nil, err
	}
	name, description = strings.TrimSpace(name), strings.TrimSpace(description)
	if name == "" || utf8.RuneCountInString(name) > 100 {
		return nil, Errorf(ErrnoInvalidField, "name must be 1 to 100 characters")
	}
	if utf8.RuneCountInString(description) > 2000 {
		return nil, Errorf(ErrnoInvalidField, "description must be at most 2000 characters")
	}
	if owner == "" {
		return nil, Errorf(ErrnoInvalidField, "owner email: missing")
	}
	a := &App{Domain: domain, Name: name, Description: description, OwnerEmail: owner,
		State: AppUnverified, VerificationKey: NewSecret(), CreatedAt: r.opts.Now()}
	if err := r.reg.CreateApp(ctx, a); err != nil {
		return nil, err
	}
	// A node may cache the new id as unknown (a probe before it existed).
	return a, r.appChanged(ctx, a.ID, 0)
}

// NormalizeDomain accepts host or host:port, lower-cased, without scheme,
// path or user info.
func NormalizeDomain(d string) (string, error) {
	d = strings.ToLower(strings.TrimSpace(d))
	bad := Errorf(ErrnoInvalidField, "domain: want a host name or host:port, such as beerchat.example")
	if d == "" || len(d) > 253 || strings.ContainsAny(d, "/@?#[] \\") {
		return "", bad
	}
	host := d
	if h, p, err := net.SplitHostPort(d); err == nil {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			return "", bad
		}
		host = h
	} else if strings.Contains(d, ":") {
		return "", bad
	}
	for _, label := range strings.Split(host, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return "", bad
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-') {
				return "", bad
			}
		}
	}
	return d, nil
}

// MarkVerified records that the app's domain was proven (by Verify, or by
// an admin who vouches for it).
func (r *Router) MarkVerified(ctx context.Context, id AppID) (*App, error) {
	return r.updateApp(ctx, id, 0, func(a *App) error {
		if a.State == AppUnverified {
			a.State = AppVerified
			a.VerifiedAt = r.opts.Now()
		}
		return nil
	})
}

// ActivateApp gives a verified (or disabled) app a fresh API key and makes
// it active. The key is returned once and kept only hashed and sealed.
func (r *Router) ActivateApp(ctx context.Context, id AppID) (*App, string, error) {
	var key string
	a, err := r.updateApp(ctx, id, 0, func(a *App) error {
		switch a.State {
		case AppUnverified:
			return fmt.Errorf("%w: the domain is not verified yet", ErrConflict)
		case AppActive:
			return fmt.Errorf("%w: already active; rotate the key instead", ErrConflict)
		}
		key = r.setKey(a)
		a.State = AppActive
		a.ActivatedAt = r.opts.Now()
		return nil
	})
	return a, key, err
}

// RotateKey replaces an active app's key; its open channels end (errno 40).
func (r *Router) RotateKey(ctx context.Context, id AppID) (*App, string, error) {
	var key string
	a, err := r.updateApp(ctx, id, ErrnoBadKey, func(a *App) error {
		if a.State != AppActive {
			return fmt.Errorf("%w: only an active app has a key to rotate", ErrConflict)
		}
		key = r.setKey(a)
		return nil
	})
	return a, key, err
}

// DeactivateApp stops an app: its key is forgotten and its channels end
// (errno 41). Activate again to get a new key.
func (r *Router) DeactivateApp(ctx context.Context, id AppID) (*App, error) {
	a, err := r.updateApp(ctx, id, ErrnoAppInactive, func(a *App) error {
		if a.State == AppUnverified {
			return fmt.Errorf("%w: the app was never activated", ErrConflict)
		}
		a.State = AppDisabled
		a.KeyHash, a.KeySealed = nil, nil
		return nil
	})
	return a, err
}

// EnableApp puts a disabled app back to verified: its owner activates it
// again to get a new key (an admin who enables an app never sees a key).
func (r *Router) EnableApp(ctx context.Context, id AppID) (*App, error) {
	return r.updateApp(ctx, id, 0, func(a *App) error {
		if a.State != AppDisabled {
			return fmt.Errorf("%w: only a disabled app can be enabled", ErrConflict)
		}
		a.State = AppVerified
		return nil
	})
}

// DeclareApp makes an [[app]] of presence.toml exist, verified and active
// with the declared key.
func (r *Router) DeclareApp(ctx context.Context, d DeclaredAppSpec) error {
	domain, err := NormalizeDomain(d.Domain)
	if err != nil {
		return err
	}
	a, err := r.reg.App(ctx, d.ID)
	now := r.opts.Now()
	exists := err == nil
	if errors.Is(err, ErrNotFound) {
		a = &App{ID: d.ID, CreatedAt: now, VerificationKey: NewSecret()}
	} else if err != nil {
		return err
	}
	a.Domain, a.Name, a.OwnerEmail = domain, d.Name, d.Email
	a.State = AppActive
	if a.VerifiedAt.IsZero() {
		a.VerifiedAt = now
	}
	if a.ActivatedAt.IsZero() {
		a.ActivatedAt = now
	}
	if !a.CheckKey(d.APIKey) {
		if r.opts.Keys == nil {
			return errors.New("no keyring")
		}
		a.KeyHash, a.KeySealed = HashKey(d.APIKey), r.opts.Keys.Seal(d.APIKey)
	}
	if exists {
		err = r.reg.UpdateApp(ctx, a)
	} else {
		err = r.reg.CreateApp(ctx, a)
	}
	if err != nil {
		return err
	}
	return r.appChanged(ctx, d.ID, 0)
}

// DeclaredAppSpec is an app declared by an admin in presence.toml.
type DeclaredAppSpec struct {
	ID                  AppID
	Name, Domain, Email string
	APIKey              string
}

func (r *Router) setKey(a *App) string {
	key := NewSecret()
	a.KeyHash = HashKey(key)
	if r.opts.Keys != nil {
		a.KeySealed = r.opts.Keys.Seal(key)
	}
	return key
}

// updateApp changes the app's row, then tells every node, which end the
// app's channels with closeWith unless it is 0.
func (r *Router) updateApp(ctx context.Context, id AppID, closeWith Errno, change func(*App) error) (*App, error) {
	a, err := r.reg.App(ctx, id)
	if err != nil {
		return nil, err
	}
	if err := change(a); err != nil {
		return nil, err
	}
	if err := r.reg.UpdateApp(ctx, a); err != nil {
		return nil, err
	}
	return a, r.appChanged(ctx, id, closeWith)
}
