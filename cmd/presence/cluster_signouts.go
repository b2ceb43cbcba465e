package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// A cluster's web sign-outs live in a JetStream key-value bucket, one key
// per signed-out session, so that a sign-out on any node is refused on
// every node at once (PROTOCOL §10), after a restart, and on a node that
// starts later (docs/cluster.md, "Web sign-out across nodes").
const signOutsBucket = "PRESENCE_SIGNED_OUT"

// sessionTTL is how long a web sign-in lasts (admin's default, given
// explicitly so that the bucket's entries outlive every session).
const sessionTTL = 12 * time.Hour

// signOutsSkew is how much longer than a session an entry is kept: a
// node whose clock is behind the NATS servers' still refuses a session
// whose sign-out was recorded at once.
const signOutsSkew = 10 * time.Minute

// kvSignOuts is admin.SignOuts on the bucket. Nothing is cached of a
// session not signed out: admin asks at every request, so a sign-out
// acknowledged by the bucket is refused by the next request on any node,
// and a node that cannot ask refuses the session (fail closed) instead
// of trusting a copy that may be stale.
type kvSignOuts struct {
	nc *nats.Conn
	kv jetstream.KeyValue
}

// openSignOuts creates the bucket (or updates its replicas and age).
func openSignOuts(ctx context.Context, nc *nats.Conn, replicas int) (*kvSignOuts, error) {
	kv, err := clusterBucket(ctx, nc, jetstream.KeyValueConfig{
		Bucket:      signOutsBucket,
		Description: "Presence: web sessions signed out before they expired (docs/cluster.md)",
		History:     1,
		TTL:         sessionTTL + signOutsSkew,
		Storage:     jetstream.FileStorage,
		Replicas:    replicas,
	}, true)
	if err != nil {
		return nil, err
	}
	return &kvSignOuts{nc: nc, kv: kv}, nil
}

// signOutKey is a session id's key: its SHA-256 in hex, so that the
// bucket holds no session id and every key is one KV keys allow.
func signOutKey(id string) string {
	h := sha256.Sum256([]byte("presence signed-out session\x00" + id))
	return hex.EncodeToString(h[:])
}

// errNoNATS is a look-up or a record while the node has no NATS server:
// it is not waited for (the client would buffer it until reconnected).
var errNoNATS = errors.New("no NATS server connected")

// Add records the sign-out and returns once JetStream has acknowledged
// it (stored on a majority of the bucket's replicas).
func (s *kvSignOuts) Add(ctx context.Context, id string, expires time.Time) error {
	if !s.nc.IsConnected() {
		return errNoNATS
	}
	_, err := s.kv.Put(ctx, signOutKey(id), []byte(strconv.FormatInt(expires.Unix(), 10)))
	return err
}

// Has looks the session up in the bucket.
func (s *kvSignOuts) Has(ctx context.Context, id string) (bool, error) {
	if !s.nc.IsConnected() {
		return false, errNoNATS
	}
	_, err := s.kv.Get(ctx, signOutKey(id))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return false, nil
	}
	return err == nil, err
}
