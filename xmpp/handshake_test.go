package xmpp_test

import (
	"bufio"
	"context"
	"crypto/sha1"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"regexp"
	"strings"
	"testing"
	"time"

	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stream"

	"github.com/presence-service/presence/core"
	pxmpp "github.com/presence-service/presence/xmpp"
)

func TestHandshake_OK(t *testing.T) {
	e := newEnv(t)
	c := e.mustDial()
	c.none() // nobody is online: no initial presence
}

func TestHandshake_Refused(t *testing.T) {
	e := newEnv(t)
	other, otherKey := e.newApp("other.example")
	if _, err := e.router.DeactivateApp(context.Background(), other); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		addr jid.JID
		key  string
		want stream.Error
	}{
		{"bad secret", e.componentJID(e.app), "not the key", stream.NotAuthorized},
		{"other app's key", e.componentJID(e.app), otherKey, stream.NotAuthorized},
		{"inactive app", e.componentJID(other), otherKey, stream.NotAuthorized},
		{"unknown app", e.componentJID(9999), e.key, stream.HostUnknown},
		{"not a component of this domain", jid.MustParse("1.elsewhere.example"), e.key, stream.HostUnknown},
		{"the bare domain", jid.MustParse(domain), e.key, stream.HostUnknown},
		{"leading zero", jid.MustParse(fmt.Sprintf("0%d.%s", e.app, domain)), e.key, stream.HostUnknown},
	} {
		t.Run(tc.name, func(t *testing.T) {
			nc, err := net.Dial("tcp", e.addr)
			if err != nil {
				t.Fatal(err)
			}
			_, err = startClient(t, nc, tc.addr, tc.key)
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want stream error %s", err, tc.want.Err)
			}
		})
	}
}

func TestHandshake_SecondConnectionIsRefused(t *testing.T) {
	e := newEnv(t)
	first := e.mustDial()
	if _, err := e.dial(e.app, e.key); !errors.Is(err, stream.Conflict) {
		t.Fatalf("second connection: got %v, want conflict", err)
	}
	// The first one still works.
	d := e.connect("alice@example.com", e.app)
	e.setStatus(d, core.Online, "")
	if g := first.next(); g.From != userJID(e.alice) {
		t.Fatalf("first connection got %+v", g)
	}
	// Once it leaves, the component may connect again.
	first.s.Close()
	first.ended()
	first.conn.Close()
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err := e.dial(e.app, e.key)
		if err == nil {
			break
		}
		if !errors.Is(err, stream.Conflict) || time.Now().After(deadline) {
			t.Fatalf("reconnect: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// rawHandshake speaks XEP-0114 by hand, to test what mellium's client
// cannot send: other namespaces, headers with and without an XML
// declaration or version, an upper-case digest.
func rawHandshake(t *testing.T, addr, header, key string, upper bool) (reply string) {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(nc, header); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(nc)
	head := readUntil(t, br, ">", 2) // the declaration, then the header
	if !strings.Contains(head, "<stream:stream") {
		head += readUntil(t, br, ">", 1)
	}
	m := regexp.MustCompile(`id='([^']+)'`).FindStringSubmatch(head)
	if m == nil {
		rest, _ := io.ReadAll(br)
		return head + string(rest)
	}
	digest := fmt.Sprintf("%x", sha1.Sum([]byte(m[1]+key)))
	if upper {
		digest = strings.ToUpper(digest)
	}
	fmt.Fprintf(nc, "<handshake>%s</handshake>", digest)
	buf := make([]byte, 4096)
	n, _ := br.Read(buf)
	return head + string(buf[:n])
}

func readUntil(t *testing.T, br *bufio.Reader, delim string, times int) string {
	t.Helper()
	var b strings.Builder
	for range times {
		s, err := br.ReadString(delim[0])
		b.WriteString(s)
		if err != nil {
			break
		}
	}
	return b.String()
}

func TestHandshake_ClientsDiffer(t *testing.T) {
	e := newEnv(t)
	for _, tc := range []struct {
		name   string
		header string
		upper  bool
	}{
		{"declaration and version", "<?xml version='1.0'?><stream:stream xmlns='jabber:component:accept' xmlns:stream='http://etherx.jabber.org/streams' to='TO' version='1.0'>", false},
		{"no declaration, no version", "<stream:stream xmlns='jabber:component:accept' xmlns:stream='http://etherx.jabber.org/streams' to='TO'>", false},
		{"double quotes, upper-case digest", `<?xml version="1.0" encoding="UTF-8"?>` + "\n" + `<stream:stream xmlns:stream="http://etherx.jabber.org/streams" xmlns="jabber:component:accept" to="TO">`, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// A fresh app each time: the previous connection may not be
			// gone yet (conflict).
			app, key := e.newApp("beerchat.example")
			header := strings.ReplaceAll(tc.header, "TO", e.componentJID(app).String())
			reply := rawHandshake(t, e.addr, header, key, tc.upper)
			if !strings.HasSuffix(reply, "<handshake/>") {
				t.Fatalf("reply %q, want <handshake/> at the end", reply)
			}
		})
	}
}

func TestHandshake_WrongNamespace(t *testing.T) {
	e := newEnv(t)
	to := e.componentJID(e.app).String()
	for name, header := range map[string]string{
		"client namespace": "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='" + to + "'>",
		"stream namespace": "<stream:stream xmlns='jabber:component:accept' xmlns:stream='urn:wrong' to='" + to + "'>",
	} {
		t.Run(name, func(t *testing.T) {
			reply := rawHandshake(t, e.addr, header, e.key, false)
			if !strings.Contains(reply, "<stream:stream") || !strings.Contains(reply, "<invalid-namespace") || !strings.HasSuffix(reply, "</stream:stream>") {
				t.Fatalf("reply %q, want our header, invalid-namespace and the end of the stream", reply)
			}
		})
	}
}

func TestHandshake_Timeout(t *testing.T) {
	e := newEnv(t, func(c *pxmpp.Config) { c.HandshakeTimeout = 200 * time.Millisecond })
	nc, err := net.Dial("tcp", e.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(5 * time.Second))
	got, _ := io.ReadAll(nc)
	if !strings.Contains(string(got), "<connection-timeout") {
		t.Fatalf("got %q, want connection-timeout", got)
	}
}

func TestHandshake_TLS(t *testing.T) {
	cert := selfSigned(t)
	e := newEnv(t, func(c *pxmpp.Config) { c.TLS = &tls.Config{Certificates: []tls.Certificate{cert}} })
	nc, err := tls.Dial("tcp", e.addr, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	c, err := startClient(t, nc, e.componentJID(e.app), e.key)
	if err != nil {
		t.Fatalf("handshake over TLS: %v", err)
	}
	d := e.connect("alice@example.com", e.app)
	e.setStatus(d, core.Online, "over TLS")
	if g := c.next(); g.Status != "over TLS" {
		t.Fatalf("got %+v", g)
	}
}

func TestShutdown_SystemShutdown(t *testing.T) {
	e := newEnv(t)
	c := e.mustDial()
	d := e.connect("alice@example.com", e.app)
	e.setStatus(d, core.Online, "")
	c.next()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := e.srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.ended(); !errors.Is(err, stream.SystemShutdown) {
		t.Fatalf("got %v, want system-shutdown", err)
	}
}

func TestDeactivateAndRotate_EndTheStream(t *testing.T) {
	e := newEnv(t)
	c := e.mustDial()
	if _, _, err := e.router.RotateKey(context.Background(), e.app); err != nil {
		t.Fatal(err)
	}
	if err := c.ended(); !errors.Is(err, stream.Reset) {
		t.Fatalf("after rotation: got %v, want reset", err)
	}
	if _, err := e.dial(e.app, e.key); !errors.Is(err, stream.NotAuthorized) {
		t.Fatalf("old key after rotation: got %v, want not-authorized", err)
	}

	other, key := e.newApp("other.example")
	c, err := e.dial(other, key)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.router.DeactivateApp(context.Background(), other); err != nil {
		t.Fatal(err)
	}
	if err := c.ended(); !errors.Is(err, stream.NotAuthorized) {
		t.Fatalf("after deactivation: got %v, want not-authorized", err)
	}
}

// rawConnect does the handshake by hand and returns the socket, for
// tests that need a component that misbehaves below XML.
func rawConnect(t *testing.T, addr, component, key string) net.Conn {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	nc.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintf(nc, "<stream:stream xmlns='jabber:component:accept' xmlns:stream='http://etherx.jabber.org/streams' to='%s'>", component)
	br := bufio.NewReader(nc)
	head := readUntil(t, br, ">", 2)
	m := regexp.MustCompile(`id='([^']+)'`).FindStringSubmatch(head)
	if m == nil {
		t.Fatalf("no stream id in %q", head)
	}
	fmt.Fprintf(nc, "<handshake>%x</handshake>", sha1.Sum([]byte(m[1]+key)))
	if ack := readUntil(t, br, ">", 1); ack != "<handshake/>" {
		t.Fatalf("got %q, want <handshake/>", ack)
	}
	nc.SetDeadline(time.Time{})
	return nc
}
