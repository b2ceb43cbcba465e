package presence_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	presence "github.com/presence-service/presence"
)

func TestDefaultsAreTheContract(t *testing.T) {
	c := presence.Default()
	checks := map[string][2]any{
		"server.listen":                   {c.Server.Listen, "127.0.0.1:8080"},
		"server.public_url":               {c.Server.PublicURL, "http://127.0.0.1:8080"},
		"database.path":                   {c.Database.Path, "data/presence.db"},
		"xmpp.listen":                     {c.XMPP.Listen, "127.0.0.1:5347"},
		"xmpp.domain":                     {c.XMPP.Domain, "presence.localhost"},
		"auth.verifier":                   {c.Auth.Verifier, "dev"},
		"device.idle_timeout":             {c.Device.IdleTimeout.Duration, 60 * time.Second},
		"device.disconnect_grace":         {c.Device.DisconnectGrace.Duration, 10 * time.Second},
		"device.max_session":              {c.Device.MaxSession.Duration, 24 * time.Hour},
		"apps.status_queue_ttl":           {c.Apps.StatusQueueTTL.Duration, time.Hour},
		"notifications.default_ttl":       {c.Notifications.DefaultTTL.Duration, 60 * time.Second},
		"notifications.queue_size":        {c.Notifications.QueueSize, 100},
		"notifications.window":            {c.Notifications.Window, 100},
		"limits.max_frame_bytes":          {c.Limits.MaxFrameBytes, 4096},
		"limits.status_per_minute":        {c.Limits.StatusPerMinute, 120},
		"limits.notifications_per_minute": {c.Limits.NotificationsPerMinute, 6000},
		"limits.max_consecutive_errors":   {c.Limits.MaxConsecutiveErrors, 10},
		"server.dev":                      {c.Server.Dev, false},
		"registration.allow_private":      {c.Registration.AllowPrivateDomains, false},
		"database.driver":                 {c.Database.Driver, "sqlite"},
		"database.url":                    {c.Database.URL, ""},
		"cluster.nats_url":                {c.Cluster.NATSURL, ""},
		"cluster.replicas":                {c.Cluster.Replicas, 3},
		"cluster.node_key_file":           {c.Cluster.NodeKeyFile, ""},
		"cluster.nats_creds":              {c.Cluster.NATSCreds, ""},
		"cluster.nats_ca":                 {c.Cluster.NATSCA, ""},
	}
	for key, v := range checks {
		if v[0] != v[1] {
			t.Errorf("%s = %v, want %v (PROTOCOL §9)", key, v[0], v[1])
		}
	}
}

func TestFileOverridesOnlyWhatItNames(t *testing.T) {
	path := filepath.Join(t.TempDir(), "presence.toml")
	os.WriteFile(path, []byte(`
[device]
disconnect_grace = "2s"
[[app]]
id = 421
name = "Beer"
domain = "beer.example"
email = "dev@beer.example"
api_key = "0123456789abcdef0123456789abcdef"
`), 0o600)
	c, err := presence.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if c.Device.DisconnectGrace.Duration != 2*time.Second || c.Device.IdleTimeout.Duration != time.Minute {
		t.Fatalf("grace %v idle %v", c.Device.DisconnectGrace, c.Device.IdleTimeout)
	}
	if len(c.App) != 1 || c.App[0].ID != 421 {
		t.Fatalf("apps %+v", c.App)
	}
}

func TestBadConfigSaysWhichKey(t *testing.T) {
	cases := map[string]string{
		"[server]\nlisten = \"nope\"":           "server.listen",
		"[auth]\nverifier = \"kerberos\"":       "auth.verifier",
		"[auth]\nverifier = \"oidc\"":           "auth.verifier",
		"[device]\nidle_timeout = \"0s\"":       "device.idle_timeout",
		"[device]\nidle_timeout = \"soon\"":     "idle_timeout",
		"[notifications]\ndefault_ttl = \"1s\"": "notifications.default_ttl",
		"[limits]\nmax_frame_bytes = 0":         "limits.max_frame_bytes",
		"[notifications]\nwindow = 0":           "notifications.window",
		"[notifications]\nwindow = 1000":        "notifications.window",
		"[server]\ntls_cert = \"c.pem\"":        "server.tls_cert",
		"[sever]\nlisten = \"127.0.0.1:1\"":     "unknown keys: sever",
		"[[app]]\nid = 1\nname = \"x\"":         "app[0]",
		"[server]\npublic_url = \"ftp://x\"":    "server.public_url",
		"[database]\ndriver = \"mysql\"":        "database.driver",
		"[database]\ndriver = \"postgres\"\n[cluster]\nnats_url = \"nats://127.0.0.1:4222\"": "database.url",
		"[database]\ndriver = \"postgres\"\nurl = \"postgres://db/p\"":                       "database.driver",
		"[cluster]\nnats_url = \"nats://127.0.0.1:4222\"":                                    "cluster.nats_url",
		clusterTOML("nats://127.0.0.1:4222, 127.0.0.1:4223", ""):                             "cluster.nats_url",
		clusterTOML("http://127.0.0.1:4222", ""):                                             "cluster.nats_url",
		clusterTOML(" , ", ""):                                                               "cluster.nats_url",
		clusterTOML("nats://127.0.0.1:4222", "replicas = 0"):                                 "cluster.replicas",
		clusterTOML("nats://127.0.0.1:4222", "replicas = 7"):                                 "cluster.replicas",
		"[cluster]\nnats_creds = \"/etc/presence/nats.creds\"":                               "cluster.nats_creds",
	}
	for text, want := range cases {
		_, err := presence.Parse(text)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: error %v, want it to name %s", text, err, want)
		}
	}
}

// clusterTOML is a cluster node's file: PostgreSQL, and NATS at natsURL.
func clusterTOML(natsURL, extra string) string {
	return "[database]\ndriver = \"postgres\"\nurl = \"postgres://presence@db.internal/presence\"\n" +
		"[cluster]\nnats_url = \"" + natsURL + "\"\n" + extra + "\n"
}

func TestClusterConfig(t *testing.T) {
	c, err := presence.Parse(clusterTOML("nats://10.0.0.1:4222, nats://10.0.0.2:4222,tls://10.0.0.3:4222", "node_key_file = \"/etc/presence/node.key\""))
	if err != nil {
		t.Fatal(err)
	}
	if !c.Clustered() || c.Database.Driver != "postgres" || c.Cluster.Replicas != 3 {
		t.Fatalf("clustered %v driver %q replicas %d", c.Clustered(), c.Database.Driver, c.Cluster.Replicas)
	}
	want := []string{"nats://10.0.0.1:4222", "nats://10.0.0.2:4222", "tls://10.0.0.3:4222"}
	if got := c.NATSURLs(); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("NATS URLs %q, want %q", got, want)
	}
	if c.NodeKeyPath() != "/etc/presence/node.key" {
		t.Fatalf("node key %q", c.NodeKeyPath())
	}
	one := presence.Default()
	if one.Clustered() || one.NodeKeyPath() != filepath.Join("data", "presence.key") {
		t.Fatalf("one node: clustered %v, node key %q, want presence.key in the data folder", one.Clustered(), one.NodeKeyPath())
	}
}
