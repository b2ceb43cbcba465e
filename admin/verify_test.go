package admin

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	presence "github.com/presence-service/presence"
)

// proofServer serves /__presence like a developer's site would.
type proofServer struct {
	srv    *httptest.Server
	domain string // host:port, as registered

	mu      sync.Mutex
	handler http.HandlerFunc
}

func newProofServer(t *testing.T) *proofServer {
	p := &proofServer{}
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		h := p.handler
		p.mu.Unlock()
		if h == nil || r.URL.Path != "/__presence" {
			http.NotFound(w, r)
			return
		}
		h(w, r)
	}))
	t.Cleanup(p.srv.Close)
	p.domain = strings.TrimPrefix(p.srv.URL, "http://")
	return p
}

func (p *proofServer) serve(h http.HandlerFunc) {
	p.mu.Lock()
	p.handler = h
	p.mu.Unlock()
}

// set serves body as the proof.
func (p *proofServer) set(body string) {
	p.serve(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		fmt.Fprint(w, body)
	})
}

// verifyFlow registers an app on the proof server, lets prepare set up
// the server, presses Verify and returns the page shown afterwards.
func verifyFlow(t *testing.T, e *env, p *proofServer, prepare func(key string)) (*response, string) {
	t.Helper()
	b := e.browser()
	b.login("dev@example.org")
	id := b.register(p.domain, "Beer chat")
	app, err := e.router.App(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	prepare(app.VerificationKey)
	r := b.postForm(appPath(id), appPath(id)+"/verify", nil)
	wantStatus(t, r, http.StatusSeeOther)
	if r.Header.Get("Location") != appPath(id) {
		t.Fatalf("verify Location %q", r.Header.Get("Location"))
	}
	app, _ = e.router.App(context.Background(), id)
	return b.get(appPath(id)), string(app.State)
}

func TestVerifySucceeds(t *testing.T) {
	e := newEnv(t)
	p := newProofServer(t)
	page, state := verifyFlow(t, e, p, func(key string) { p.set("\n  " + key + "\r\n\n") })
	if state != "verified" {
		t.Fatalf("state %s\n%s", state, page.body)
	}
	wantBody(t, page, "Verified: you own")
}

func TestVerifyFollowsRedirectOnSameHost(t *testing.T) {
	e := newEnv(t)
	p := newProofServer(t)
	_, state := verifyFlow(t, e, p, func(key string) {
		p.serve(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Query().Get("x") == "" {
				http.Redirect(w, r, "/__presence?x=1", http.StatusFound)
				return
			}
			fmt.Fprint(w, key)
		})
	})
	if state != "verified" {
		t.Fatalf("state %s", state)
	}
}

func TestVerifyFailures(t *testing.T) {
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	t.Cleanup(other.Close)
	cases := []struct {
		name    string
		private bool // registration.allow_private_domains
		prepare func(p *proofServer, key string)
		want    string
	}{
		{"wrong key", true, func(p *proofServer, key string) { p.set(strings.Repeat("x", 1024)) },
			"answered 1024 bytes that are not this app&#39;s verification key"},
		{"not found", true, func(p *proofServer, key string) {}, "answered HTTP 404"},
		{"timeout", true, func(p *proofServer, key string) {
			p.serve(func(w http.ResponseWriter, r *http.Request) {
				select {
				case <-r.Context().Done():
				case <-time.After(5 * time.Second):
				}
			})
		}, "did not answer within 300ms"},
		{"redirect off the domain", true, func(p *proofServer, key string) {
			p.serve(func(w http.ResponseWriter, r *http.Request) {
				http.Redirect(w, r, strings.Replace(other.URL, "127.0.0.1", "localhost", 1)+"/__presence", http.StatusFound)
			})
		}, "redirected off the domain"},
		{"redirect to another port", true, func(p *proofServer, key string) {
			p.serve(func(w http.ResponseWriter, r *http.Request) {
				http.Redirect(w, r, other.URL+"/__presence", http.StatusFound)
			})
		}, "redirected off the domain"},
		{"oversize body", true, func(p *proofServer, key string) { p.set(key + strings.Repeat(" ", 8<<10)) },
			"more than 8 KiB"},
		{"private address", false, func(p *proofServer, key string) { p.set(key) },
			"127.0.0.1, a private, loopback or otherwise reserved address"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t, func(cfg *presence.Config, _ *Config) { cfg.Registration.AllowPrivateDomains = c.private })
			p := newProofServer(t)
			page, state := verifyFlow(t, e, p, func(key string) { c.prepare(p, key) })
			if state != "unverified" {
				t.Fatalf("state %s after a failed verification", state)
			}
			wantBody(t, page, "Verification failed: ", c.want)
		})
	}
}

func TestVerifyConnectionRefused(t *testing.T) {
	e := newEnv(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	err = e.admin.verifyDomain(context.Background(), addr, "k")
	if err == nil || !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("err %v", err)
	}
}

// fakeResolver answers every name with fixed addresses.
type fakeResolver []string

func (f fakeResolver) LookupIPAddr(_ context.Context, host string) ([]net.IPAddr, error) {
	var out []net.IPAddr
	for _, a := range f {
		out = append(out, net.IPAddr{IP: net.ParseIP(a)})
	}
	return out, nil
}

func TestVerifyResolvesOnceAndPins(t *testing.T) {
	// A name resolving to loopback is refused when private domains are
	// not allowed, even when mixed with a public address.
	for _, addrs := range [][]string{{"127.0.0.1"}, {"93.184.215.14", "10.0.0.1"}, {"::ffff:169.254.169.254"}, {"fd00::1"}} {
		e := newEnv(t, func(cfg *presence.Config, c *Config) {
			cfg.Registration.AllowPrivateDomains = false
			c.Resolver = fakeResolver(addrs)
		})
		err := e.admin.verifyDomain(context.Background(), "rebind.example", "k")
		if err == nil || !strings.Contains(err.Error(), "reserved address") {
			t.Errorf("%v: err %v", addrs, err)
		}
	}
	// With private domains allowed, the name's checked address is the one
	// dialled: the proof server is reached through a made-up name.
	p := newProofServer(t)
	p.set("the-key")
	_, port, _ := net.SplitHostPort(p.domain)
	e := newEnv(t, func(_ *presence.Config, c *Config) { c.Resolver = fakeResolver{"127.0.0.1"} })
	if err := e.admin.verifyDomain(context.Background(), "made-up.example:"+port, "the-key"); err != nil {
		t.Fatal(err)
	}
}

func TestPublicAddr(t *testing.T) {
	for a, want := range map[string]bool{
		"93.184.215.14": true, "2606:2800:21f:cb07:6820:80da:af6b:8b2c": true,
		"127.0.0.1": false, "10.1.2.3": false, "172.16.0.1": false, "192.168.1.1": false,
		"169.254.169.254": false, "100.64.0.1": false, "0.0.0.0": false, "::1": false,
		"fe80::1": false, "fc00::1": false, "::ffff:10.0.0.1": false, "64:ff9b::a00:1": false,
		"224.0.0.1": false, "255.255.255.255": false,
	} {
		if got := publicAddr(netip.MustParseAddr(a)); got != want {
			t.Errorf("publicAddr(%s) = %v, want %v", a, got, want)
		}
	}
}

func TestSameOrigin(t *testing.T) {
	u := func(s string) *url.URL { v, _ := url.Parse(s); return v }
	for _, c := range []struct {
		start, next string
		want        bool
	}{
		{"http://a.example/__presence", "https://a.example/__presence", true},
		{"http://a.example/__presence", "https://a.example:443/x", true},
		{"http://a.example/__presence", "https://a.example:8443/x", false},
		{"http://a.example/__presence", "https://b.example/x", false},
		{"http://a.example/__presence", "https://www.a.example/x", false},
		{"http://a.example:8080/__presence", "http://a.example:8080/y", true},
		{"http://a.example:8080/__presence", "http://a.example/y", false},
		{"http://a.example/__presence", "ftp://a.example/y", false},
	} {
		if got := sameOrigin(u(c.start), u(c.next)); got != c.want {
			t.Errorf("sameOrigin(%s, %s) = %v", c.start, c.next, got)
		}
	}
}
