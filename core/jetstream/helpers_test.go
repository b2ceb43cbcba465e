package jetstream_test

import (
	"context"
	"fmt"
	"sync"
	"syscall"
	"testing"
	"time"

	natsjs "github.com/nats-io/nats.go/jetstream"

	"github.com/presence-service/presence/core"
	"github.com/presence-service/presence/core/jetstream"
	"github.com/presence-service/presence/internal/natstest"
)

// grants is the registry's answer to "whose PUID is this", kept in a map:
// the queues only ever ask GrantByPUID (core/postgres answers it in a
// cluster, and has its own tests).
type grants struct {
	mu sync.Mutex // guards: m
	m  map[string]*core.Grant
}

func (g *grants) add(user string, app core.AppID, puid string) string {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.m == nil {
		g.m = make(map[string]*core.Grant)
	}
	g.m[puid] = &core.Grant{PUID: puid, UserID: user, AppID: app}
	return puid
}

func (g *grants) revoke(puid string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	delete(g.m, puid)
}

func (g *grants) GrantByPUID(ctx context.Context, puid string) (*core.Grant, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if gr, ok := g.m[puid]; ok {
		return gr, nil
	}
	return nil, fmt.Errorf("grant %q: %w", puid, core.ErrNotFound)
}

// env is a three-server cluster with the queues on R3 streams.
type env struct {
	c      *natstest.Cluster
	js     natsjs.JetStream
	grants *grants
	n      *jetstream.Notifications
	s      *jetstream.Statuses
}

func newEnv(t *testing.T, queueSize int) *env { return newEnvTB(t, queueSize) }

func newEnvTB(t testing.TB, queueSize int) *env {
	t.Helper()
	c := natstest.Start(t, 3)
	js, err := natsjs.New(c.Connect())
	if err != nil {
		t.Fatal(err)
	}
	e := &env{c: c, js: js, grants: &grants{}}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	e.n, err = jetstream.OpenNotifications(ctx, js, e.grants, jetstream.NotificationConfig{Replicas: 3, QueueSize: queueSize})
	if err != nil {
		t.Fatal(err)
	}
	e.s, err = jetstream.OpenStatuses(ctx, js, e.grants, jetstream.StatusConfig{Replicas: 3, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// cpuTime is the process's CPU time (user and system) so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func ids(ns []core.Notification) []string {
	out := make([]string, len(ns))
	for i, n := range ns {
		out[i] = n.ID
	}
	return out
}

func messages(ns []core.Notification) []string {
	out := make([]string, len(ns))
	for i, n := range ns {
		out[i] = n.Message
	}
	return out
}
