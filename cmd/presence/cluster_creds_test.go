package main

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nkeys"

	presence "github.com/presence-service/presence"
)

// natsWithAccounts starts a NATS server that trusts one operator and
// admits only users of its one account, as production NATS does, and
// returns its URL and a .creds file (user JWT and NKey seed) of a user
// of that account.
func natsWithAccounts(t *testing.T) (url, credsPath string) {
	t.Helper()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	operator, err := nkeys.CreateOperator()
	must(err)
	operatorPub, err := operator.PublicKey()
	must(err)
	operatorJWT, err := jwt.NewOperatorClaims(operatorPub).Encode(operator)
	must(err)
	operatorClaims, err := jwt.DecodeOperatorClaims(operatorJWT)
	must(err)

	account, err := nkeys.CreateAccount()
	must(err)
	accountPub, err := account.PublicKey()
	must(err)
	accountJWT, err := jwt.NewAccountClaims(accountPub).Encode(operator)
	must(err)

	user, err := nkeys.CreateUser()
	must(err)
	userPub, err := user.PublicKey()
	must(err)
	userJWT, err := jwt.NewUserClaims(userPub).Encode(account)
	must(err)
	seed, err := user.Seed()
	must(err)
	creds, err := jwt.FormatUserConfig(userJWT, seed)
	must(err)
	credsPath = filepath.Join(t.TempDir(), "presence.creds")
	must(os.WriteFile(credsPath, creds, 0o600))

	resolver := &natsserver.MemAccResolver{}
	must(resolver.Store(accountPub, accountJWT))
	s, err := natsserver.NewServer(&natsserver.Options{
		Host: "127.0.0.1", Port: natsserver.RANDOM_PORT, NoLog: true, NoSigs: true,
		TrustedOperators: []*jwt.OperatorClaims{operatorClaims},
		AccountResolver:  resolver,
	})
	must(err)
	go s.Start()
	t.Cleanup(s.Shutdown)
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("NATS server not ready")
	}
	return s.ClientURL(), credsPath
}

// A node given cluster.nats_creds connects, as that user, to NATS that
// requires accounts; without them it is refused, saying which key and
// URL; with a creds file that is not there it refuses to start, naming
// the key and the path.
func TestClusterNATSCredentials(t *testing.T) {
	url, credsPath := natsWithAccounts(t)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	config := func(extra string) *presence.Config {
		t.Helper()
		cfg, err := presence.Parse(`[database]
driver = "postgres"
url = "postgres://presence@db.internal/presence"
[cluster]
nats_url = "` + url + `"
` + extra)
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}

	nc, err := connectNATS(config(`nats_creds = "`+credsPath+`"`), log, &linkWatch{})
	if err != nil {
		t.Fatalf("with the account's creds: %v", err)
	}
	if err := nc.Publish("presence.bus.h", []byte("hello")); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatalf("publish as the account's user: %v", err)
	}
	nc.Close()

	if nc, err := connectNATS(config(""), log, &linkWatch{}); err == nil {
		nc.Close()
		t.Fatal("connected without credentials to NATS that requires them")
	} else if !strings.Contains(err.Error(), "cluster.nats_url") || !strings.Contains(err.Error(), "uthorization") {
		t.Fatalf("without credentials: %v, want the key and the authorization refusal", err)
	}

	missing := filepath.Join(t.TempDir(), "nowhere.creds")
	_, err = startServer(t.Context(), config(`nats_creds = "`+missing+`"`), log)
	if err == nil || !strings.Contains(err.Error(), "cluster.nats_creds") || !strings.Contains(err.Error(), missing) {
		t.Fatalf("with a missing creds file, start-up said %v; want it to name cluster.nats_creds and %s", err, missing)
	}
	missingCA := filepath.Join(t.TempDir(), "nowhere-ca.pem")
	_, err = startServer(t.Context(), config(`nats_ca = "`+missingCA+`"`), log)
	if err == nil || !strings.Contains(err.Error(), "cluster.nats_ca") || !strings.Contains(err.Error(), missingCA) {
		t.Fatalf("with a missing CA file, start-up said %v; want it to name cluster.nats_ca and %s", err, missingCA)
	}
}
