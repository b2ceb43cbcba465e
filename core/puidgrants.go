package core

import (
	"context"
	"sync"
)

// puidGrantsMax bounds the PUIDs a PUIDGrants remembers; past it, an
// arbitrary one is forgotten for each new one (and read again when next
// needed).
const puidGrantsMax = 1 << 16

// PUIDGrants is the registry's GrantByPUID for the notification queues
// of a cluster (core/jetstream checks each item's PUID with it), from
// memory: a PUID's grant is read from the registry once, then answered
// from what it said, so a notification costs no registry read, and
// notifications to a PUID this node has looked up are still stored while
// the registry cannot be read (PostgreSQL restarting). That is as safe
// as the router's grant cache: a grant changes only by its revocation,
// whose invalidation reaches every node within 1 s (PROTOCOL §10) and
// drops its PUID here (a read that a revocation may have overtaken is not
// kept), and a node that may have missed one drops them all. Give it to
// the router in Deps.PUIDGrants, which tells it.
type PUIDGrants struct {
	reg interface {
		GrantByPUID(ctx context.Context, puid string) (*Grant, error)
	}

	mu   sync.Mutex // guards: last, gen
	last map[string]*Grant
	gen  uint64 // bumped by every forget: a read older than one is not kept
}

// NewPUIDGrants puts a memory in front of reg's GrantByPUID.
func NewPUIDGrants(reg Registry) *PUIDGrants {
	return &PUIDGrants{reg: reg, last: make(map[string]*Grant)}
}

// GrantByPUID answers what the registry said for puid, asking it when
// puid is not remembered. The caller must not change the grant.
func (p *PUIDGrants) GrantByPUID(ctx context.Context, puid string) (*Grant, error) {
	p.mu.Lock()
	g, ok := p.last[puid]
	gen := p.gen
	p.mu.Unlock()
	if ok {
		return g, nil
	}
	g, err := p.reg.GrantByPUID(ctx, puid)
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if gen != p.gen {
		return g, nil // a revocation may have overtaken the read: keep nothing
	}
	if len(p.last) >= puidGrantsMax {
		for k := range p.last {
			delete(p.last, k)
			break
		}
	}
	p.last[puid] = g
	return g, nil
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
