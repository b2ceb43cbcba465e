package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"

	presence "github.com/presence-service/presence"
	"github.com/presence-service/presence/internal/pgtest"
	"github.com/presence-service/presence/internal/presencetest"
)

// testCA is a private certificate authority made for one test, as an
// operator's own CA signs the NATS servers' certificates: a short-lived
// ECDSA root whose certificate is in a PEM file (what cluster.nats_ca
// names).
type testCA struct {
	cert    *x509.Certificate
	key     *ecdsa.PrivateKey
	pemPath string
}

func newTestCA(t *testing.T, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Minute),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "nats-ca.pem")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return &testCA{cert: cert, key: key, pemPath: path}
}

// serverTLS is a TLS configuration for a server at 127.0.0.1 whose
// certificate the CA signed.
func (ca *testCA) serverTLS(t *testing.T) *tls.Config {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "nats.test"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    time.Now().Add(-time.Minute),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{
		Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}},
		MinVersion:   tls.VersionTLS12,
	}
}

// natsWithTLS starts one NATS server with JetStream that speaks to
// clients only over TLS, with a certificate of ca, and returns its
// tls:// URL.
func natsWithTLS(t *testing.T, ca *testCA) string {
	t.Helper()
	s, err := natsserver.NewServer(&natsserver.Options{
		Host: "127.0.0.1", Port: natsserver.RANDOM_PORT, NoLog: true, NoSigs: true,
		JetStream: true, StoreDir: t.TempDir(),
		TLS: true, TLSConfig: ca.serverTLS(t), TLSTimeout: 5,
	})
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	t.Cleanup(s.Shutdown)
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("NATS server not ready")
	}
	return fmt.Sprintf("tls://%s", s.Addr())
}

// A node given cluster.nats_ca, the PEM file of the private CA that
// signed its NATS server's certificate, starts on NATS that requires TLS
// and carries the cluster's traffic over it: two nodes serve /healthz
// 200, a status set by a device on node A reaches the app's channel on
// node B (the bus), and a notification POSTed to B reaches the device on
// A (JetStream).
func TestClusterNATSTLSPrivateCA(t *testing.T) {
	pgURL := pgtest.Database(t) // skips without PRESENCE_CLUSTER
	ca := newTestCA(t, "Presence test NATS CA")
	url := natsWithTLS(t, ca)
	dataDir := t.TempDir()
	writeNodeKey(t, dataDir)
	extra := fmt.Sprintf("replicas = 1\nnats_ca = %q\n", ca.pemPath)
	a := startNode(t, clusterConfig(t, "node-a", dataDir, url, pgURL, extra))
	b := startNode(t, clusterConfig(t, "node-b", dataDir, url, pgURL, extra))
	for _, n := range []*node{a, b} {
		if _, err := n.srv.backend.nats.TLSConnectionState(); err != nil {
			t.Fatalf("node %s's NATS link: %v, want TLS", n.srv.cfg.NodeName(), err)
		}
		res, err := http.Get(n.http("/healthz"))
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != 200 {
			t.Fatalf("/healthz of node %s: %d, want 200", n.srv.cfg.NodeName(), res.StatusCode)
		}
	}

	app, key := b.newApp("beer.example")
	_, puid := a.grantAs("ann@example.com", app, "ann")
	feed := presencetest.OpenFeed(t, b.ws(fmt.Sprint("/", app)), key)
	phone, sid := a.device("ann@example.com", "phone", app)
	status(phone, sid, "online", "over TLS")
	feed.Expect(puid, "online", "over TLS")

	b.mustPostNote(app, key, puid, "Bob: a beer, over TLS?", 200)
	var pushed struct {
		Type    string `json:"type"`
		UID     string `json:"UID"`
		Message string `json:"message"`
	}
	phone.Decode(&pushed)
	if pushed.Type != "notification" || pushed.UID != puid || pushed.Message != "Bob: a beer, over TLS?" {
		t.Fatalf("device on node A got %+v, want the notification POSTed to node B", pushed)
	}
}

// A node refuses to start, within a bound and naming what to fix, on NATS
// that requires TLS under a private CA: with the system's roots only
// (no cluster.nats_ca), with the CA of another deployment, and with a CA
// file that is not PEM (a DER certificate, as some CAs hand them out).
// None of them gets as far as PostgreSQL, which is not there.
func TestClusterNATSTLSRefusedClearly(t *testing.T) {
	ca := newTestCA(t, "Presence test NATS CA")
	url := natsWithTLS(t, ca)
	other := newTestCA(t, "Another deployment's CA")
	der := filepath.Join(t.TempDir(), "nats-ca.der")
	if err := os.WriteFile(der, ca.cert.Raw, 0o600); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	pgURL := "postgres://presence@" + closedPort(t) + "/presence"
	plainURL := "nats://" + strings.TrimPrefix(url, "tls://") // the server asks for TLS itself

	for _, tc := range []struct {
		name, url, ca string
		want          []string
	}{
		{"system roots, tls://", url, "", []string{"cluster.nats_url", url, "certificate", "set cluster.nats_ca"}},
		{"system roots, nats://", plainURL, "", []string{"cluster.nats_url", plainURL, "certificate", "set cluster.nats_ca"}},
		{"another CA", url, other.pemPath, []string{"cluster.nats_url", "certificate", "cluster.nats_ca " + other.pemPath}},
		{"not PEM", url, der, []string{"cluster.nats_ca", der, "PEM"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			extra := ""
			if tc.ca != "" {
				extra = fmt.Sprintf("nats_ca = %q\n", tc.ca)
			}
			cfg, err := presence.Load(clusterConfig(t, "node-a", t.TempDir(), tc.url, pgURL, extra))
			if err != nil {
				t.Fatal(err)
			}
			began := time.Now()
			s, err := startServer(t.Context(), cfg, log)
			took := time.Since(began)
			if err == nil {
				s.Shutdown(context.Background())
				t.Fatal("the node started")
			}
			for _, want := range tc.want {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("start-up said %q; want it to say %q", err, want)
				}
			}
			if took > 10*time.Second {
				t.Errorf("start-up took %v to fail, want under 10 s", took)
			}
		})
	}
}
