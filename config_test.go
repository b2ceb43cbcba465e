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
	}
	for text, want := range cases {
		_, err := presence.Parse(text)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: error %v, want it to name %s", text, err, want)
		}
	}
}
