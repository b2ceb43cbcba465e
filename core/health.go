package core

import "context"

// Pinger is a service that can say whether it answers. The Registry and
// the Bus always are; queues that live elsewhere (a JetStream stream
// beside a PostgreSQL registry) implement it to be checked too.
type Pinger interface {
	Ping(ctx context.Context) error
}

// HealthError says which service the router is built on failed to answer:
// Part is "registry", "notification queues", "status queue" or "bus",
// safe to show to anyone; Err is the detail, for the log.
type HealthError struct {
	Part string
	Err  error
}

func (e *HealthError) Error() string { return e.Part + ": " + e.Err.Error() }
func (e *HealthError) Unwrap() error { return e.Err }

// Health returns nil while every service the router is built on answers
// (GET /healthz), else a *HealthError naming the first that does not. A
// service that is the same value as one checked before is not asked twice.
func (r *Router) Health(ctx context.Context) error {
	parts := []struct {
		name string
		svc  any
	}{
		{"registry", r.reg},
		{"notification queues", r.queues},
		{"status queue", r.statuses},
		{"bus", r.bus},
	}
	var asked []any
	for _, p := range parts {
		pg, ok := p.svc.(Pinger)
		if !ok || alreadyAsked(asked, p.svc) {
			continue
		}
		asked = append(asked, p.svc)
		if err := pg.Ping(ctx); err != nil {
			return &HealthError{Part: p.name, Err: err}
		}
	}
	return nil
}

// alreadyAsked reports whether svc is one of asked. Services are compared
// as interface values: pointers, for every implementation in the tree.
func alreadyAsked(asked []any, svc any) (found bool) {
	defer func() {
		if recover() != nil { // an uncomparable value: ask it anyway
			found = false
		}
	}()
	for _, a := range asked {
		if a == svc {
			return true
		}
	}
	return false
}

// CommitCounter is a notification store that groups concurrent writes
// into shared commits (core/sqlite's group commit) and counts them, for
// /metrics: writes/commits is how many writers share each commit.
type CommitCounter interface {
	CommitStats() (commits, writes uint64)
}

// CommitStats returns the notification store's commit counts, and false
// when it does not count them.
func (r *Router) CommitStats() (commits, writes uint64, ok bool) {
	cc, ok := r.queues.(CommitCounter)
	if !ok {
		return 0, 0, false
	}
	commits, writes = cc.CommitStats()
	return commits, writes, true
}
