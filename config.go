package presence

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
)

// Config is presence.toml. Every key has a default: the embedded file.
type Config struct {
	Server        ServerConfig        `toml:"server"`
	Database      DatabaseConfig      `toml:"database"`
	XMPP          XMPPConfig          `toml:"xmpp"`
	Auth          AuthConfig          `toml:"auth"`
	Admin         AdminConfig         `toml:"admin"`
	Device        DeviceConfig        `toml:"device"`
	Apps          AppsConfig          `toml:"apps"`
	Notifications NotificationsConfig `toml:"notifications"`
	Limits        LimitsConfig        `toml:"limits"`
	Registration  RegistrationConfig  `toml:"registration"`
	Cluster       ClusterConfig       `toml:"cluster"`
	App           []DeclaredApp       `toml:"app"`
}

// ServerConfig is [server].
type ServerConfig struct {
	Listen    string `toml:"listen"`
	PublicURL string `toml:"public_url"`
	TLSCert   string `toml:"tls_cert"`
	TLSKey    string `toml:"tls_key"`
	Node      string `toml:"node"`
	Dev       bool   `toml:"dev"`
}

// DatabaseConfig is [database].
type DatabaseConfig struct {
	Path   string `toml:"path"`
	Driver string `toml:"driver"` // "sqlite" (one node) or "postgres" (a cluster)
	URL    string `toml:"url"`    // PostgreSQL connection URL when Driver is "postgres"
}

// ClusterConfig is [cluster] (PROTOCOL §10). An empty NATSURL is one node.
type ClusterConfig struct {
	NATSURL     string `toml:"nats_url"`      // NATS server URLs, comma-separated
	Replicas    int    `toml:"replicas"`      // JetStream replicas of the cluster's streams and buckets
	NodeKeyFile string `toml:"node_key_file"` // the node key every node shares; empty: presence.key in the data folder
	NATSCreds   string `toml:"nats_creds"`    // a NATS user's .creds file (JWT and NKey seed); empty: credentials, if any, in the URLs
	NATSCA      string `toml:"nats_ca"`       // PEM CA certificates that sign the NATS servers' (tls:// URLs); empty: the system's roots
}

// DefaultReplicas is cluster.replicas when the file does not say.
const DefaultReplicas = 3

// MaxReplicas is JetStream's bound on a stream's replicas.
const MaxReplicas = 5

// Clustered reports whether cluster.nats_url is set: cluster mode.
func (c *Config) Clustered() bool { return c.Cluster.NATSURL != "" }

// NATSURLs is cluster.nats_url split at commas, blanks trimmed.
func (c *Config) NATSURLs() []string {
	var out []string
	for _, u := range strings.Split(c.Cluster.NATSURL, ",") {
		if u = strings.TrimSpace(u); u != "" {
			out = append(out, u)
		}
	}
	return out
}

// NodeKeyPath is cluster.node_key_file, or presence.key in the data folder.
func (c *Config) NodeKeyPath() string {
	if c.Cluster.NodeKeyFile != "" {
		return c.Cluster.NodeKeyFile
	}
	return filepath.Join(c.DataDir(), "presence.key")
}

// XMPPConfig is [xmpp].
type XMPPConfig struct {
	Listen string `toml:"listen"`
	Domain string `toml:"domain"`
}

// AuthConfig is [auth].
type AuthConfig struct {
	Verifier         string `toml:"verifier"`
	DevSecret        string `toml:"dev_secret"`
	VerifierURL      string `toml:"verifier_url"`
	Audience         string `toml:"audience"`
	OIDCIssuer       string `toml:"oidc_issuer"`
	OIDCClientID     string `toml:"oidc_client_id"`
	OIDCClientSecret string `toml:"oidc_client_secret"`
}

// AdminConfig is [admin].
type AdminConfig struct {
	Emails []string `toml:"emails"`
}

// DeviceConfig is [device].
type DeviceConfig struct {
	IdleTimeout     Duration `toml:"idle_timeout"`
	DisconnectGrace Duration `toml:"disconnect_grace"`
	MaxSession      Duration `toml:"max_session"`
}

// AppsConfig is [apps].
type AppsConfig struct {
	StatusQueueTTL Duration `toml:"status_queue_ttl"`
}

// MaxNotificationWindow bounds notifications.window: a device's outbox
// (256 frames in ws) must hold a whole window and the answers to the
// requests it has in flight, so that a device is never dropped for the
// size of its own backlog.
const MaxNotificationWindow = 200

// NotificationsConfig is [notifications].
type NotificationsConfig struct {
	DefaultTTL Duration `toml:"default_ttl"`
	QueueSize  int      `toml:"queue_size"`
	MaxAge     Duration `toml:"max_age"`
	Window     int      `toml:"window"`
}

// LimitsConfig is [limits].
type LimitsConfig struct {
	MaxFrameBytes          int `toml:"max_frame_bytes"`
	StatusPerMinute        int `toml:"status_per_minute"`
	NotificationsPerMinute int `toml:"notifications_per_minute"`
	MaxConsecutiveErrors   int `toml:"max_consecutive_errors"`
}

// RegistrationConfig is [registration].
type RegistrationConfig struct {
	AllowPrivateDomains bool `toml:"allow_private_domains"`
}

// DeclaredApp is one [[app]]: an app that an admin declares in the file.
// It is created verified and active at start, with this API key.
type DeclaredApp struct {
	ID     int64  `toml:"id"`
	Name   string `toml:"name"`
	Domain string `toml:"domain"`
	Email  string `toml:"email"`
	APIKey string `toml:"api_key"`
}

// Duration is a time.Duration written as a Go duration string in TOML.
type Duration struct{ time.Duration }

// UnmarshalText parses "90s", "1h30m" and the like.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return err
	}
	d.Duration = v
	return nil
}

// MarshalText writes the duration back as a Go duration string.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.Duration.String()), nil }

// Default returns the embedded default configuration.
func Default() *Config {
	c, err := Parse(DefaultConfig)
	if err != nil {
		panic("presence: embedded presence.toml: " + err.Error())
	}
	return c
}

// Parse reads TOML over the embedded defaults and checks the result.
func Parse(text string) (*Config, error) {
	// [cluster] is commented out in the embedded file: its defaults are set here.
	c := &Config{Cluster: ClusterConfig{Replicas: DefaultReplicas}}
	if _, err := toml.Decode(DefaultConfig, c); err != nil {
		return nil, err
	}
	md, err := toml.Decode(text, c)
	if err != nil {
		return nil, err
	}
	if undecoded := md.Undecoded(); len(undecoded) > 0 {
		keys := make([]string, len(undecoded))
		for i, k := range undecoded {
			keys[i] = k.String()
		}
		return nil, fmt.Errorf("unknown keys: %s", strings.Join(keys, ", "))
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c, nil
}

// Load reads the file at path over the embedded defaults; an empty path
// gives the defaults alone.
func Load(path string) (*Config, error) {
	if path == "" {
		return Default(), nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	c, err := Parse(string(b))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// Validate says which key is wrong, so that the server refuses to start
// rather than run on a surprise.
func (c *Config) Validate() error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...)))
	}
	if _, _, err := net.SplitHostPort(c.Server.Listen); err != nil {
		bad("server.listen", "%v", err)
	}
	if u, err := url.Parse(c.Server.PublicURL); err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		bad("server.public_url", "want an http(s) URL, got %q", c.Server.PublicURL)
	}
	if (c.Server.TLSCert == "") != (c.Server.TLSKey == "") {
		bad("server.tls_cert", "tls_cert and tls_key go together")
	}
	if c.Database.Path == "" {
		bad("database.path", "empty")
	}
	switch c.Database.Driver {
	case "sqlite":
		if c.Clustered() {
			bad("cluster.nats_url", "a cluster needs database.driver = \"postgres\": every node must share one registry")
		}
	case "postgres":
		if c.Database.URL == "" {
			bad("database.url", "database.driver = \"postgres\" needs the PostgreSQL connection URL")
		}
		if !c.Clustered() {
			bad("database.driver", "\"postgres\" is for a cluster: set cluster.nats_url too (one node runs on SQLite)")
		}
	default:
		bad("database.driver", "want sqlite or postgres, got %q", c.Database.Driver)
	}
	for _, raw := range c.NATSURLs() {
		u, err := url.Parse(raw)
		if err != nil || u.Host == "" || (u.Scheme != "nats" && u.Scheme != "tls" && u.Scheme != "ws" && u.Scheme != "wss") {
			bad("cluster.nats_url", "want nats://host:port (or tls://, ws://, wss://), comma-separated; got %q", raw)
		}
	}
	if c.Clustered() && len(c.NATSURLs()) == 0 {
		bad("cluster.nats_url", "no URL in %q", c.Cluster.NATSURL)
	}
	if !c.Clustered() && (c.Cluster.NATSCreds != "" || c.Cluster.NATSCA != "") {
		bad("cluster.nats_creds", "cluster.nats_creds and cluster.nats_ca are for a cluster: set cluster.nats_url too")
	}
	if r := c.Cluster.Replicas; r < 1 || r > MaxReplicas {
		bad("cluster.replicas", "must be within 1 and %d", MaxReplicas)
	}
	if c.XMPP.Listen != "" {
		if _, _, err := net.SplitHostPort(c.XMPP.Listen); err != nil {
			bad("xmpp.listen", "%v", err)
		}
	}
	if c.XMPP.Domain == "" {
		bad("xmpp.domain", "empty")
	}
	switch c.Auth.Verifier {
	case "dev":
	case "browserid":
		if c.Auth.VerifierURL == "" || c.Auth.Audience == "" {
			bad("auth.verifier", "browserid needs auth.verifier_url and auth.audience")
		}
	case "oidc":
		if c.Auth.OIDCIssuer == "" || c.Auth.OIDCClientID == "" {
			bad("auth.verifier", "oidc needs auth.oidc_issuer and auth.oidc_client_id")
		}
	default:
		bad("auth.verifier", "want dev, browserid or oidc, got %q", c.Auth.Verifier)
	}
	positive := map[string]time.Duration{
		"device.idle_timeout":       c.Device.IdleTimeout.Duration,
		"device.max_session":        c.Device.MaxSession.Duration,
		"apps.status_queue_ttl":     c.Apps.StatusQueueTTL.Duration,
		"notifications.default_ttl": c.Notifications.DefaultTTL.Duration,
		"notifications.max_age":     c.Notifications.MaxAge.Duration,
	}
	for k, v := range positive {
		if v <= 0 {
			bad(k, "must be positive")
		}
	}
	if c.Device.DisconnectGrace.Duration < 0 {
		bad("device.disconnect_grace", "must not be negative")
	}
	if ttl := c.Notifications.DefaultTTL.Duration; ttl < 5*time.Second || ttl > 24*time.Hour {
		bad("notifications.default_ttl", "must be within 5s and 24h")
	}
	ints := map[string]int{
		"notifications.queue_size":        c.Notifications.QueueSize,
		"limits.max_frame_bytes":          c.Limits.MaxFrameBytes,
		"limits.status_per_minute":        c.Limits.StatusPerMinute,
		"limits.notifications_per_minute": c.Limits.NotificationsPerMinute,
		"limits.max_consecutive_errors":   c.Limits.MaxConsecutiveErrors,
	}
	for k, v := range ints {
		if v <= 0 {
			bad(k, "must be positive")
		}
	}
	if w := c.Notifications.Window; w < 1 || w > MaxNotificationWindow {
		bad("notifications.window", "must be within 1 and %d", MaxNotificationWindow)
	}
	for i, a := range c.App {
		if a.ID <= 0 || a.Name == "" || a.Domain == "" || a.Email == "" || len(a.APIKey) < 32 {
			bad(fmt.Sprintf("app[%d]", i), "needs id > 0, name, domain, email and an api_key of at least 32 characters")
		}
	}
	return errors.Join(errs...)
}

// DataDir is the folder that holds the database, the node key and the
// generated dev secret.
func (c *Config) DataDir() string { return filepath.Dir(c.Database.Path) }

// NodeName is server.node, or the host name when it is empty.
func (c *Config) NodeName() string {
	if c.Server.Node != "" {
		return c.Server.Node
	}
	h, err := os.Hostname()
	if err != nil {
		return "presence"
	}
	return h
}
