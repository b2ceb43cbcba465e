package main

import (
	"bufio"
	"context"
	"crypto/sha1"
	"encoding/hex"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestXMPPAppHandshakeAndStamps plays the accepting side of XEP-0114 by
// hand: the digest must be hex SHA-1(id ‖ key), and a stamp split across
// two writes must still be read once, whole.
func TestXMPPAppHandshakeAndStamps(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	const key = "secret-key"
	errc := make(chan string, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			errc <- err.Error()
			return
		}
		defer c.Close()
		r := bufio.NewReader(c)
		header, _ := r.ReadString('>') // <?xml …?>
		if strings.HasPrefix(header, "<?xml") {
			header, _ = r.ReadString('>')
		}
		if !strings.Contains(header, "to='7.presence.localhost'") || !strings.Contains(header, "jabber:component:accept") {
			errc <- "bad header " + header
			return
		}
		c.Write([]byte(`<?xml version='1.0'?><stream:stream xmlns:stream='http://etherx.jabber.org/streams' xmlns='jabber:component:accept' from='7.presence.localhost' id='abc123'>`))
		hs, _ := r.ReadString('>')
		digest, _ := r.ReadString('<')
		sum := sha1.Sum([]byte("abc123" + key))
		if hs != "<handshake>" || strings.TrimSuffix(digest, "<") != hex.EncodeToString(sum[:]) {
			c.Write([]byte("<stream:error><not-authorized xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>"))
			errc <- "bad handshake " + hs + digest
			return
		}
		c.Write([]byte("<handshake/><presence from='p1@presence.localhost' to='7.presence.localhost'><status>bench@12"))
		time.Sleep(50 * time.Millisecond)
		c.Write([]byte("34</status></presence><presence from='p2@presence.localhost'><status>bench@99</status></presence>"))
		errc <- ""
		time.Sleep(200 * time.Millisecond)
	}()
	d := newSourceDialer(ln.Addr().String(), 50)
	x, err := connectXMPPApp(context.Background(), d, ln.Addr().String(), 7, "presence.localhost", key)
	if err != nil {
		t.Fatal(err)
	}
	defer x.close()
	if msg := <-errc; msg != "" {
		t.Fatal(msg)
	}
	var lo, hi atomic.Int64
	hi.Store(now() + int64(100*time.Millisecond))
	var got []int64
	x.read(&lo, &hi, 0, func(stamp, _ int64) { got = append(got, stamp) })
	if len(got) != 2 || got[0] != 1234 || got[1] != 99 {
		t.Errorf("stamps = %v, want [1234 99]", got)
	}
}
