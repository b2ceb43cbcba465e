package xmpp_test

import (
	"errors"
	"net"
	"testing"
	"time"

	"mellium.im/xmpp/stream"

	"github.com/presence-service/presence/core"
)

// Guessing handshake secrets: past core.KeyFailureBurstBySource wrong
// digests the source gets policy-violation, even with the right secret;
// the component at another address connects.
func TestHandshake_GuessingIsMetered(t *testing.T) {
	e := newEnv(t)
	dialFrom := func(src string) net.Conn {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
		nc, err := d.Dial("tcp", e.addr)
		if err != nil {
			t.Fatal(err)
		}
		return nc
	}
	for i := range core.KeyFailureBurstBySource {
		if _, err := startClient(t, dialFrom("127.0.0.1"), e.componentJID(e.app), "not the key"); !errors.Is(err, stream.NotAuthorized) {
			t.Fatalf("guess %d: %v, want not-authorized", i, err)
		}
	}
	_, err := startClient(t, dialFrom("127.0.0.1"), e.componentJID(e.app), e.key)
	var se stream.Error
	if !errors.Is(err, stream.PolicyViolation) || !errors.As(err, &se) || len(se.Text) == 0 ||
		se.Text[0].Value != "slow down: too many wrong API keys from this address; retry after 6 s" {
		t.Fatalf("right key after %d wrong ones: %v (%+v), want policy-violation saying retry after 6 s", core.KeyFailureBurstBySource, err, se)
	}
	if _, err := startClient(t, dialFrom("127.0.0.2"), e.componentJID(e.app), e.key); err != nil {
		t.Fatalf("the component at another address: %v", err)
	}
	if n := e.router.Metrics.KeyChecksRefused.Load(); n != 1 {
		t.Fatalf("key checks refused: %d, want 1", n)
	}
}
