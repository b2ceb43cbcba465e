package main

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	presence "github.com/presence-service/presence"
	"github.com/presence-service/presence/core"
)

// The cluster's secret fingerprints live in one JetStream key-value
// entry (docs/cluster.md, "The shared secrets"): the first node to start
// records them, every node compares its own at start.
const (
	secretsBucket = "PRESENCE_SECRETS"
	secretsKey    = "fingerprints"
)

// fingerprintLabel starts every fingerprint's message; a new way of
// fingerprinting gets a new label (and a record it does not misread).
const fingerprintLabel = "presence cluster secret fingerprint v1\x00"

// secretsRecord is what the bucket holds: fingerprints, never secrets,
// and who recorded them, for the message of a node that differs.
type secretsRecord struct {
	Node       string    `json:"node"`
	At         time.Time `json:"at"`
	NodeKey    []byte    `json:"node_key"`
	SessionKey []byte    `json:"session_key"`
	DevSecret  []byte    `json:"dev_secret"`
}

// nodeSecrets are the secrets a node must share with every other node,
// and where each came from (for messages).
type nodeSecrets struct {
	nodeKey, sessionKey, devSecret []byte
	nodeKeyFrom, sessionFrom       string
	devFrom                        string
}

// fingerprints are HMAC-SHA256 values keyed by the node key: the node
// key's over a fixed label, each other secret's over the label, its name
// and itself. The node key is 32 random bytes, so no fingerprint can be
// reversed or guessed without it, even of a weak auth.dev_secret (an
// HMAC keyed by that secret alone could be brute-forced from the record);
// whoever holds the node key can already unseal every API key.
func (s *nodeSecrets) record(node string, now time.Time) secretsRecord {
	mac := func(name string, secret []byte) []byte {
		h := hmac.New(sha256.New, s.nodeKey)
		h.Write([]byte(fingerprintLabel + name + "\x00"))
		h.Write(secret)
		return h.Sum(nil)
	}
	return secretsRecord{
		Node:       node,
		At:         now.UTC().Truncate(time.Second),
		NodeKey:    mac("node_key", nil),
		SessionKey: mac("session_key", s.sessionKey),
		DevSecret:  mac("dev_secret", s.devSecret),
	}
}

// loadNodeSecrets reads the node's shared secrets. With create, the
// session key and dev secret are made when missing, as on one node (the
// first node of a new cluster); without it a missing one is an error:
// the cluster has them already, and a new one would differ.
func loadNodeSecrets(cfg *presence.Config, create bool) (*nodeSecrets, error) {
	s := &nodeSecrets{nodeKeyFrom: absPath(cfg.NodeKeyPath())}
	var err error
	if s.nodeKey, err = os.ReadFile(cfg.NodeKeyPath()); err != nil {
		return nil, fmt.Errorf("node key: %w", err)
	}
	load := func(path string, create bool) ([]byte, error) {
		if !create {
			if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
				return nil, fmt.Errorf("%s is missing, and the cluster has one already (every node needs the same file): copy it from a node of the cluster (mode 0600)", absPath(path))
			}
		}
		return core.LoadOrCreateSecret(path, 32)
	}
	s.sessionFrom = "session_key " + absPath(filepath.Join(cfg.DataDir(), sessionKeyFile))
	if s.sessionKey, err = load(filepath.Join(cfg.DataDir(), sessionKeyFile), create); err != nil {
		return nil, fmt.Errorf("session key: %w", err)
	}
	if cfg.Auth.DevSecret != "" {
		s.devFrom, s.devSecret = "auth.dev_secret", []byte(cfg.Auth.DevSecret)
	} else {
		s.devFrom = "dev_secret " + absPath(filepath.Join(cfg.DataDir(), devSecretFile))
		// Not compared with another verifier (it signs nothing then), so
		// made when missing, as serve makes it anyway.
		dev := create || cfg.Auth.Verifier != "dev"
		if s.devSecret, err = load(filepath.Join(cfg.DataDir(), devSecretFile), dev); err != nil {
			return nil, fmt.Errorf("dev secret: %w", err)
		}
	}
	return s, nil
}

// secretsTimeout bounds the check at start; JetStream has answered the
// streams' creation just before.
const secretsTimeout = 10 * time.Second

// checkClusterSecrets refuses a cluster node whose node key, session key
// or (with auth.verifier = "dev") dev secret differ from the cluster's:
// a sign-in made on another node would be refused here, and API keys
// sealed elsewhere would not open. The first node records the cluster's
// fingerprints; nodes starting together agree through the bucket's
// create-if-absent.
func checkClusterSecrets(ctx context.Context, cfg *presence.Config, nc *nats.Conn, log *slog.Logger) error {
	ctx, cancel := context.WithTimeout(ctx, secretsTimeout)
	defer cancel()
	kv, err := secretsKV(ctx, nc, cfg.Cluster.Replicas, true)
	if err != nil {
		return err
	}
	var entry jetstream.KeyValueEntry
	err = retrySoon(ctx, func() (err error) { entry, err = kv.Get(ctx, secretsKey); return err })
	if err == nil {
		return compareSecrets(cfg, entry.Value())
	}
	if !errors.Is(err, jetstream.ErrKeyNotFound) {
		return fmt.Errorf("cluster.nats_url: read the cluster's secret fingerprints (bucket %s): %w", secretsBucket, err)
	}
	s, err := loadNodeSecrets(cfg, true)
	if err != nil {
		return err
	}
	value, err := json.Marshal(s.record(cfg.NodeName(), time.Now()))
	if err != nil {
		return err
	}
	err = retrySoon(ctx, func() error { _, err := kv.Create(ctx, secretsKey, value); return err })
	if err == nil {
		log.Info("recorded the cluster's secret fingerprints: nodes with other secrets will refuse to start", "bucket", secretsBucket)
		return nil
	} else if !errors.Is(err, jetstream.ErrKeyExists) && !wrongLastSequence(err) {
		return fmt.Errorf("cluster.nats_url: record the cluster's secret fingerprints (bucket %s): %w", secretsBucket, err)
	}
	// Another node recorded them first, a moment ago (a replica may not
	// hold them yet).
	err = retrySoon(ctx, func() (err error) {
		if entry, err = kv.Get(ctx, secretsKey); errors.Is(err, jetstream.ErrKeyNotFound) {
			return fmt.Errorf("%w: %w", errNotYet, err)
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("cluster.nats_url: read the cluster's secret fingerprints (bucket %s): %w", secretsBucket, err)
	}
	return compareSecrets(cfg, entry.Value())
}

// wrongLastSequence says whether err is JetStream refusing a write that
// expected the key absent: another node wrote first. kv.Create maps it
// to ErrKeyExists, except on a key whose last entry is a delete or purge
// (after forget-secrets), where its second attempt's error is returned
// as it is.
func wrongLastSequence(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}

// errNotYet marks an error that a later attempt may not get.
var errNotYet = errors.New("not yet")

// retrySoon calls f until it succeeds, fails for good, or ctx ends. A
// bucket just created has no responders on its replicas for a moment,
// and a replica may lag the leader: those errors are tried again.
func retrySoon(ctx context.Context, f func() error) error {
	backoff := 20 * time.Millisecond
	for {
		err := f()
		if err == nil || !(errors.Is(err, nats.ErrNoResponders) || errors.Is(err, jetstream.ErrNoStreamResponse) ||
			errors.Is(err, errNotYet)) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 500*time.Millisecond)
	}
}

// clusterBucket opens a key-value bucket of the cluster's (the shared
// secrets' and the web sign-outs'), creating it or updating its settings
// to cfg when create is set; it tries again while a bucket just created
// has no responders.
func clusterBucket(ctx context.Context, nc *nats.Conn, cfg jetstream.KeyValueConfig, create bool) (jetstream.KeyValue, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("cluster.nats_url: JetStream: %w", err)
	}
	var kv jetstream.KeyValue
	err = retrySoon(ctx, func() (err error) {
		if create {
			kv, err = js.CreateOrUpdateKeyValue(ctx, cfg)
		} else {
			kv, err = js.KeyValue(ctx, cfg.Bucket)
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("cluster.nats_url: the key-value bucket %s: %w", cfg.Bucket, err)
	}
	return kv, nil
}

// secretsKV opens the shared secrets' bucket (see clusterBucket).
func secretsKV(ctx context.Context, nc *nats.Conn, replicas int, create bool) (jetstream.KeyValue, error) {
	return clusterBucket(ctx, nc, jetstream.KeyValueConfig{
		Bucket:      secretsBucket,
		Description: "Presence: fingerprints of the secrets every node shares (docs/cluster.md)",
		History:     1,
		Storage:     jetstream.FileStorage,
		Replicas:    replicas,
	}, create)
}

// compareSecrets compares this node's secrets with the recorded
// fingerprints, in constant time, and names each one that differs (never
// its value) and what to do.
func compareSecrets(cfg *presence.Config, value []byte) error {
	var rec secretsRecord
	if err := json.Unmarshal(value, &rec); err != nil || len(rec.NodeKey) != sha256.Size {
		return fmt.Errorf("the cluster's secret fingerprints (bucket %s, key %s) are unreadable: run `presence cluster forget-secrets` and start the nodes again", secretsBucket, secretsKey)
	}
	s, err := loadNodeSecrets(cfg, false)
	if err != nil {
		return err
	}
	mine := s.record(cfg.NodeName(), time.Now())
	recorded := fmt.Sprintf("recorded by node %s at %s", rec.Node, rec.At.Format(time.RFC3339))
	const rotate = "to change the cluster's secrets on purpose, give every node the new files and run `presence cluster forget-secrets` before restarting them (docs/cluster.md, \"Changing the shared secrets\")"
	if !hmac.Equal(mine.NodeKey, rec.NodeKey) {
		// The other fingerprints are keyed by the node key: with another
		// key they cannot be compared.
		return fmt.Errorf("node key %s (cluster.node_key_file) is not the cluster's (%s): API keys sealed on other nodes would not open here; copy the node key from a node of the cluster; %s",
			s.nodeKeyFrom, recorded, rotate)
	}
	copyIt := "copy it from a node of the cluster (mode 0600)"
	var differ []string
	if !hmac.Equal(mine.SessionKey, rec.SessionKey) {
		differ = append(differ, s.sessionFrom+" is not the cluster's: web sign-ins made on other nodes would be refused here; "+copyIt)
	}
	if cfg.Auth.Verifier == "dev" && !hmac.Equal(mine.DevSecret, rec.DevSecret) {
		fix := copyIt
		if cfg.Auth.DevSecret != "" {
			fix = "give it the value the other nodes have"
		}
		differ = append(differ, s.devFrom+" is not the cluster's: dev tokens of other nodes would be refused here; "+fix)
	}
	if len(differ) == 0 {
		return nil
	}
	return fmt.Errorf("%s (the cluster's fingerprints were %s); %s", strings.Join(differ, "; and "), recorded, rotate)
}
