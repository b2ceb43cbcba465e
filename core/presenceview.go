package core

import (
	"sync"
	"time"
)

// NodePresence is what the devices one node holds of a user show an app:
// the best of them, or offline when none does. A node publishes it on the
// Bus whenever it changes; every node combines the NodePresences of all
// nodes into the user's status for the app (PROTOCOL §10: "aggregated
// over all of their devices on all nodes") and tells its own channels of
// the app when that status changes.
type NodePresence struct {
	Node  string // the publishing router's id (Router.NodeID)
	User  string
	App   AppID
	PUIDs []string // the user's PUIDs for App, as the publishing node knows them
	Presence
	At time.Time
}

// presenceView is a node's picture of every user's status across the
// cluster: per (user, app), what each node shows and what this node's
// channels of the app were last told. Entries live while some node
// shows the user to the app.
type presenceView struct {
	shards [shardCount]viewShard
}

type viewShard struct {
	mu sync.Mutex // guards: m, and each entry in it; taken after a user's lock, before an app's
	m  map[viewKey]*viewEntry
}

type viewKey struct {
	user string
	app  AppID
}

type viewEntry struct {
	byNode map[string]nodeShown // non-offline only
	puids  []string             // from the latest NodePresence
	told   Presence             // what this node's channels were last told
}

type nodeShown struct {
	Presence
	at time.Time
}

func (v *presenceView) init() {
	for i := range v.shards {
		v.shards[i].m = make(map[viewKey]*viewEntry)
	}
}

// best is the combined status: the best status of the nodes; between
// equals, the most recent (its message wins), as aggregateLocked does
// between the devices of one node.
func (e *viewEntry) best() (Presence, time.Time) {
	best, bestAt := Presence{Status: Offline}, time.Time{}
	for _, s := range e.byNode {
		if s.Status > best.Status || (s.Status == best.Status && s.at.After(bestAt)) {
			best, bestAt = s.Presence, s.at
		}
	}
	return best, bestAt
}

// deliverPresence records p and, if the user's combined status for the
// app changed, tells this node's channels of the app under each PUID. An
// offline for a user the node has no entry of is delivered too: the node
// may have started after the user came online.
func (r *Router) deliverPresence(p NodePresence) {
	key := viewKey{p.User, p.App}
	sh := &r.view.shards[shardOf(p.User)]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	e := sh.m[key]
	known := e != nil
	if e == nil {
		if p.Status == Offline {
			r.tellView(p.App, p.PUIDs, Presence{Status: Offline}, p.At)
			return
		}
		e = &viewEntry{byNode: make(map[string]nodeShown, 1), told: Presence{Status: Offline}}
		sh.m[key] = e
	}
	if p.Status == Offline {
		delete(e.byNode, p.Node)
	} else {
		e.byNode[p.Node] = nodeShown{p.Presence, p.At}
	}
	e.puids = p.PUIDs
	next, _ := e.best()
	if !known || next != e.told {
		e.told = next
		r.tellView(p.App, e.puids, next, p.At)
	}
	if len(e.byNode) == 0 {
		delete(sh.m, key)
	}
}

// forgetNode drops what node showed of every user, telling channels here
// what changes by it (a node that left the cluster, or died).
func (r *Router) forgetNode(node string) {
	r.forgetHolder(node) // sharedqueue.go
	now := r.opts.Now()
	for i := range r.view.shards {
		sh := &r.view.shards[i]
		sh.mu.Lock()
		for key, e := range sh.m {
			if _, ok := e.byNode[node]; !ok {
				continue
			}
			delete(e.byNode, node)
			if next, _ := e.best(); next != e.told {
				e.told = next
				r.tellView(key.app, e.puids, next, now)
			}
			if len(e.byNode) == 0 {
				delete(sh.m, key)
			}
		}
		sh.mu.Unlock()
	}
}

// handOver moves what e's old node showed of the device's user to the
// new session's node, where that node has no part of its own yet; the
// new node's next NodePresence replaces it.
func (v *presenceView) handOver(e DeviceEvent) {
	sh := &v.shards[shardOf(e.User)]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	for app, p := range e.Apps {
		if p.Status == Offline {
			continue
		}
		ent := sh.m[viewKey{e.User, app}]
		if ent == nil {
			continue
		}
		if _, ok := ent.byNode[e.To]; !ok {
			ent.byNode[e.To] = nodeShown{p, e.At}
		}
	}
}

// forgetPUID stops telling channels about a revoked PUID.
func (v *presenceView) forgetPUID(user string, app AppID, puid string) {
	sh := &v.shards[shardOf(user)]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if e := sh.m[viewKey{user, app}]; e != nil {
		var kept []string
		for _, p := range e.puids {
			if p != puid {
				kept = append(kept, p)
			}
		}
		e.puids = kept
	}
}

func (r *Router) tellView(app AppID, puids []string, p Presence, at time.Time) {
	if p.Status == Offline {
		p.Message = "" // an offline user carries no message
	}
	for _, puid := range puids {
		r.deliverStatus(app, StatusUpdate{PUID: puid, Status: p.Status, Message: p.Message, At: at})
	}
}
