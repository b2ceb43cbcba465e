package core

import (
	"context"
	"errors"
	"sync"
)

// puidGrantsMax bounds the PUIDs a PUIDGrants remembers; past it, an
// arbitrary one is forgotten for each new one (it only serves while the
// registry is away).
const puidGrantsMax = 1 << 16

// PUIDGrants is the registry's GrantByPUID for the notification queues
// of a cluster (core/jetstream checks each item's PUID with it), with a
// fallback: while the registry cannot be read (PostgreSQL restarting),
// a PUID this node has looked up before is answered with the grant read
// last, so that notifications to it are still stored. The fallback is as
// safe as the app cache's (appCacheTTL): a grant's revocation reaches
// every node as an invalidation that drops its PUID here, and a node that
// may have missed one drops them all; no grant changes while the registry
// is away. Give it to the router in Deps.PUIDGrants, which tells it.
type PUIDGrants struct {
	reg interface {
		GrantByPUID(ctx context.Context, puid string) (*Grant, error)
	}

	mu   sync.Mutex // guards: last, gen
	last map[string]*Grant
	gen  uint64 // bumped by every forget: a read older than one is not kept
}

// NewPUIDGrants puts a fallback in front of reg's GrantByPUID.
func NewPUIDGrants(reg Registry) *PUIDGrants {
	return &PUIDGrants{reg: reg, last: make(map[string]*Grant)}
}

// GrantByPUID asks the registry, and answers from what it said last for
// puid when it cannot be read.
func (p *PUIDGrants) GrantByPUID(ctx context.Context, puid string) (*Grant, error) {
	p.mu.Lock()
	gen := p.gen
	p.mu.Unlock()
	g, err := p.reg.GrantByPUID(ctx, puid)
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case err == nil:
		if gen != p.gen {
			return g, nil // a revocation may have overtaken the read: keep nothing
		}
		if _, known := p.last[puid]; !known && len(p.last) >= puidGrantsMax {
			for k := range p.last {
				delete(p.last, k)
				break
			}
		}
		p.last[puid] = g
		return g, nil
	case errors.Is(err, ErrNotFound):
		delete(p.last, puid)
		return nil, err
	}
	if last, ok := p.last[puid]; ok {
		return last, nil
	}
	return nil, err
}

// forget drops puid (its grant was revoked).
func (p *PUIDGrants) forget(puid string) {
	p.mu.Lock()
	delete(p.last, puid)
	p.gen++
	p.mu.Unlock()
}

// forgetAll drops every PUID (this node may have missed revocations).
func (p *PUIDGrants) forgetAll() {
	p.mu.Lock()
	clear(p.last)
	p.gen++
	p.mu.Unlock()
}
