package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	presence "github.com/presence-service/presence"
	"github.com/presence-service/presence/internal/natstest"
	"github.com/presence-service/presence/internal/pgtest"
	"github.com/presence-service/presence/internal/presencetest"
)

// copySecrets copies a node's data folder secrets (node key, session
// key, dev secret) into a new data folder, as an operator distributes
// them; change names a file to give other bytes instead.
func copySecrets(t *testing.T, from, change string) string {
	t.Helper()
	to := t.TempDir()
	for _, name := range []string{"presence.key", sessionKeyFile, devSecretFile} {
		b, err := os.ReadFile(filepath.Join(from, name))
		if err != nil {
			t.Fatal(err)
		}
		if name == change {
			b = bytes.Repeat([]byte{0x5a}, len(b))
		}
		if err := os.WriteFile(filepath.Join(to, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return to
}

// PROTOCOL §10: a web sign-in made on one node is valid on every node,
// which holds only when every node has the same secrets. Two nodes with
// the same files start (a sign-in on A is valid on B); nodes whose
// session key, node key or dev secret differ, or whose data folder lacks
// the session key, refuse to start, naming the file or key that differs
// (never its value) and what to do; the dev secret counts only with the
// dev verifier. The record holds no secret. After
// `presence cluster forget-secrets`, a node with new secrets starts and
// records them, and a node with the old ones is refused; of two nodes
// with different secrets starting together, one starts.
func TestClusterSecretsDifferRefused(t *testing.T) {
	pgURL := pgtest.Database(t) // skips without PRESENCE_CLUSTER
	nats := natstest.Start(t, 3)
	dirA := t.TempDir()
	writeNodeKey(t, dirA)
	configFor := func(name, dir, extra string) string {
		return clusterConfig(t, name, dir, nats.URL(), pgURL, extra)
	}
	a := startNode(t, configFor("node-a", dirA, ""))
	dirB := copySecrets(t, dirA, "")
	b := startNode(t, configFor("node-b", dirB, ""))

	ann := presencetest.NewBrowser(t, a.http(""))
	ann.Login("ann@example.com")
	ann.Base = b.http("") // the same cookie, on node B
	if code, _ := ann.Get("/me"); code != 200 {
		t.Fatalf("/me on node B with node A's sign-in: %d, want 200", code)
	}

	// The record holds fingerprints, never a secret.
	kv, err := jetstream.New(nats.Connect())
	if err != nil {
		t.Fatal(err)
	}
	bucket, err := kv.KeyValue(t.Context(), secretsBucket)
	if err != nil {
		t.Fatal(err)
	}
	entry, err := bucket.Get(t.Context(), secretsKey)
	if err != nil {
		t.Fatal(err)
	}
	secretsOf := func(dir string) [][]byte {
		var out [][]byte
		for _, name := range []string{"presence.key", sessionKeyFile, devSecretFile} {
			b, err := os.ReadFile(filepath.Join(dir, name))
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, b)
		}
		return out
	}
	leaks := func(text []byte, secrets [][]byte) bool {
		for _, s := range secrets {
			for _, form := range [][]byte{s, []byte(hex.EncodeToString(s)), []byte(base64.StdEncoding.EncodeToString(s))} {
				if bytes.Contains(text, form) {
					return true
				}
			}
		}
		return false
	}
	if leaks(entry.Value(), secretsOf(dirA)) {
		t.Fatalf("the recorded fingerprints %s hold a secret", entry.Value())
	}

	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	refused := func(config string, want ...string) {
		t.Helper()
		cfg, err := presence.Load(config)
		if err != nil {
			t.Fatal(err)
		}
		s, err := startServer(t.Context(), cfg, log)
		if err == nil {
			s.Shutdown(context.Background())
			t.Fatalf("a node started with %s", config)
		}
		t.Logf("refused: %v", err)
		for _, w := range want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("start-up said %q; want it to say %q", err, w)
			}
		}
		if leaks([]byte(err.Error()), append(secretsOf(dirA), []byte("weak dev secret"))) {
			t.Errorf("start-up's message %q shows a secret", err)
		}
	}
	const what = "copy it from a node of the cluster"
	const how = "presence cluster forget-secrets"

	dirC := copySecrets(t, dirA, sessionKeyFile)
	refused(configFor("node-c", dirC, ""), "session_key "+filepath.Join(dirC, sessionKeyFile), "not the cluster's", "recorded by node node-a", what, how)
	refused(configFor("node-c", copySecrets(t, dirA, "presence.key"), ""), "node key", "cluster.node_key_file", "not the cluster's", "copy the node key from a node", how)
	refused(configFor("node-c", copySecrets(t, dirA, devSecretFile), ""), "dev_secret", "not the cluster's", what)
	refused(configFor("node-c", copySecrets(t, dirA, ""), "[auth]\ndev_secret = \"weak dev secret\"\n"), "auth.dev_secret is not the cluster's", "the value the other nodes have")
	// With another verifier the dev secret signs nothing: not compared.
	browserID := "[auth]\nverifier = \"browserid\"\nverifier_url = \"http://127.0.0.1:1/verify\"\naudience = \"https://presence.example\"\n"
	startNode(t, configFor("node-d", copySecrets(t, dirA, devSecretFile), browserID)).stop()

	bare := t.TempDir()
	writeNodeKey(t, bare)
	refused(configFor("node-c", bare, ""), filepath.Join(bare, sessionKeyFile)+" is missing", what)
	if _, err := os.Stat(filepath.Join(bare, sessionKeyFile)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a refused node made a session key of its own: %v", err)
	}

	// Changing the secrets: forget the record, and the first node started
	// with the new files records them; one with the old files is refused.
	configC := configFor("node-c", dirC, "")
	var out bytes.Buffer
	if err := run(t.Context(), []string{"cluster", "forget-secrets", "-config", configC, "--json"}, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(out.String()); got != `{"forgotten":true}` {
		t.Fatalf("cluster forget-secrets: %s", got)
	}
	startNode(t, configC)
	refused(configFor("node-b2", copySecrets(t, dirA, ""), ""), "session_key", "not the cluster's", "recorded by node node-c")

	// Two nodes with different secrets starting together, with no record:
	// the bucket's create-if-absent lets exactly one of them record.
	if err := run(t.Context(), []string{"cluster", "forget-secrets", "-config", configC}, io.Discard, io.Discard); err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, 2)
	for i, dir := range []string{copySecrets(t, dirA, ""), copySecrets(t, dirC, "")} {
		cfg, err := presence.Load(configFor(fmt.Sprintf("node-e%d", i), dir, ""))
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			s, err := startServer(t.Context(), cfg, log)
			if err == nil {
				t.Cleanup(func() { s.Shutdown(context.Background()) })
			}
			errs <- err
		}()
	}
	first, second := <-errs, <-errs
	if (first == nil) == (second == nil) {
		t.Fatalf("two nodes with different secrets started together: %v and %v, want one started and one refused", first, second)
	}
	if err := errors.Join(first, second); !strings.Contains(err.Error(), "session_key") || !strings.Contains(err.Error(), "not the cluster's") {
		t.Fatalf("the node refused said %v, want the session_key named", err)
	}
}
