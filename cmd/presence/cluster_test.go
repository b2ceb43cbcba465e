package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	presence "github.com/presence-service/presence"
	"github.com/presence-service/presence/internal/natstest"
	"github.com/presence-service/presence/internal/pgtest"
)

// TestMain stops the PostgreSQL that the cluster tests may have started.
func TestMain(m *testing.M) { os.Exit(pgtest.Run(m)) }

// clusterConfig writes a cluster node's presence.toml: its data folder
// (node key, dev secret, session key) in dataDir, shared by the nodes of
// one test as a deployment shares those files, and its listeners on
// ports the kernel picks.
func clusterConfig(t *testing.T, nodeName, dataDir, natsURL, pgURL, extra string) string {
	t.Helper()
	return clusterConfigGrace(t, nodeName, dataDir, natsURL, pgURL, "300ms", extra)
}

// clusterConfigGrace is clusterConfig with device.disconnect_grace set
// to grace (clusterConfig's is short, for tests that wait it out).
func clusterConfigGrace(t *testing.T, nodeName, dataDir, natsURL, pgURL, grace, extra string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "presence.toml")
	text := fmt.Sprintf(`
[server]
listen = "127.0.0.1:0"
node = %q
[database]
path = %q
driver = "postgres"
url = %q
[xmpp]
listen = "127.0.0.1:0"
[device]
disconnect_grace = %q
[cluster]
nats_url = %q
%s`, nodeName, filepath.Join(dataDir, "presence.db"), pgURL, grace, natsURL, extra)
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// closedPort is a loopback address where nothing listens.
func closedPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// A node whose NATS cannot be reached refuses to start, naming the key
// and the URL, before it touches PostgreSQL (which is not there either).
func TestClusterServeWithoutNATSFailsClearly(t *testing.T) {
	natsURL := "nats://" + closedPort(t)
	config := clusterConfig(t, "node-a", t.TempDir(), natsURL, "postgres://presence@"+closedPort(t)+"/presence", "")
	cfg, err := presence.Load(config)
	if err != nil {
		t.Fatal(err)
	}
	s, err := startServer(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err == nil {
		s.Shutdown(context.Background())
		t.Fatal("a cluster node started without NATS")
	}
	for _, want := range []string{"cluster.nats_url", "cannot reach NATS at " + natsURL} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
}

// writeNodeKey puts the cluster's shared node key in dataDir, as an
// operator does once for a new cluster.
func writeNodeKey(t *testing.T, dataDir string) {
	t.Helper()
	key := make([]byte, 32)
	for i := range key {
		key[i] = byte(i*7 + 1)
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dataDir, "presence.key"), key, 0o600); err != nil {
		t.Fatal(err)
	}
}

// A cluster node on the real engines: it refuses to start without the
// shared node key (it must not make its own), then serves, says
// /healthz 200, and the CLI acts on the same registry.
func TestClusterNodeStartsOnPostgresAndNATS(t *testing.T) {
	pgURL := pgtest.Database(t) // skips without PRESENCE_CLUSTER
	nats := natstest.Start(t, 3)
	dataDir := t.TempDir()
	config := clusterConfig(t, "node-a", dataDir, nats.URL(), pgURL, "")
	cfg, err := presence.Load(config)
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if s, err := startServer(t.Context(), cfg, log); err == nil {
		s.Shutdown(context.Background())
		t.Fatal("a cluster node started without the shared node key")
	} else if !strings.Contains(err.Error(), "node key") || !strings.Contains(err.Error(), "every node") {
		t.Fatalf("without the node key: %v, want it to say the key must be the same on every node", err)
	}
	writeNodeKey(t, dataDir)
	n := startNode(t, config)
	res, err := http.Get(n.http("/healthz"))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 {
		t.Fatalf("/healthz: %d, want 200", res.StatusCode)
	}
	id, _ := n.newApp("beer.example")
	var list struct {
		Apps []struct {
			ID    int64  `json:"app_id"`
			State string `json:"state"`
		} `json:"apps"`
	}
	n.cli(&list, "apps", "list")
	listed := list.Apps
	if len(listed) != 1 || listed[0].ID != id || listed[0].State != "active" {
		t.Fatalf("apps list on the cluster's registry: %+v, want app %d active", listed, id)
	}
}
