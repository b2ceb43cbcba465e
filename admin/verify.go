package admin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"syscall"
)

// Domain verification (PROTOCOL §5): fetch http://<domain>/__presence and
// compare it, trimmed, with the app's verification key. The fetch is made
// on the developer's behalf from inside our network, so it is guarded
// like any server-side request a stranger can aim:
//   - the name is resolved once; every address is checked (private,
//     loopback, link-local and other special ranges are refused unless
//     registration.allow_private_domains), and the connection is pinned to
//     the checked address: the dialer never resolves again, so DNS
//     rebinding between check and connect gains nothing, and a Control
//     hook re-checks the address actually dialled;
//   - no proxy from the environment (it would bypass the pin);
//   - 5 s for the whole exchange, headers capped, body capped at 8 KiB;
//   - redirects only to the same host (and port, see sameOrigin), at most
//     three; never to another name, which would need another lookup.

// Resolver is the part of net.Resolver that verification uses.
type Resolver interface {
	LookupIPAddr(ctx context.Context, host string) ([]net.IPAddr, error)
}

// maxProofBytes caps the body of /__presence.
const maxProofBytes = 8 << 10

// verifyError is a reason the developer reads on the app page.
type verifyError string

func (e verifyError) Error() string { return string(e) }

// special are ranges refused besides those netip classifies (private,
// loopback, link-local, multicast, unspecified).
var special = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),      // "this network"
	netip.MustParsePrefix("100.64.0.0/10"),  // carrier-grade NAT
	netip.MustParsePrefix("192.0.0.0/24"),   // IETF protocol assignments
	netip.MustParsePrefix("198.18.0.0/15"),  // benchmarking
	netip.MustParsePrefix("240.0.0.0/4"),    // reserved, and broadcast
	netip.MustParsePrefix("64:ff9b::/96"),   // NAT64: may reach private IPv4
	netip.MustParsePrefix("64:ff9b:1::/48"), // local-use NAT64
	netip.MustParsePrefix("2001:db8::/32"),  // documentation
	netip.MustParsePrefix("2002::/16"),      // 6to4: embeds any IPv4
	netip.MustParsePrefix("fec0::/10"),      // deprecated site-local
	netip.MustParsePrefix("2001::/32"),      // Teredo
	netip.MustParsePrefix("100::/64"),       // discard
	netip.MustParsePrefix("ff00::/8"),       // multicast
	netip.MustParsePrefix("224.0.0.0/4"),    // multicast
	netip.MustParsePrefix("169.254.0.0/16"), // link-local (also cloud metadata)
	netip.MustParsePrefix("fe80::/10"),      // link-local
	netip.MustParsePrefix("127.0.0.0/8"),    // loopback
	netip.MustParsePrefix("::1/128"),        // loopback
	netip.MustParsePrefix("10.0.0.0/8"),     // private
	netip.MustParsePrefix("172.16.0.0/12"),  // private
	netip.MustParsePrefix("192.168.0.0/16"), // private
	netip.MustParsePrefix("fc00::/7"),       // unique local
}

// publicAddr says whether a may be fetched when private domains are not
// allowed.
func publicAddr(a netip.Addr) bool {
	a = a.Unmap()
	if !a.IsValid() || a.IsLoopback() || a.IsPrivate() || a.IsLinkLocalUnicast() || a.IsLinkLocalMulticast() ||
		a.IsInterfaceLocalMulticast() || a.IsMulticast() || a.IsUnspecified() {
		return false
	}
	for _, p := range special {
		if p.Contains(a) {
			return false
		}
	}
	return true
}

// verifyDomain fetches the proof and compares it with want.
func (s *Server) verifyDomain(ctx context.Context, domain, want string) error {
	got, err := s.fetchProof(ctx, domain)
	if err != nil {
		return err
	}
	if strings.TrimSpace(got) != strings.TrimSpace(want) {
		return verifyError(fmt.Sprintf("http://%s/__presence answered %d bytes that are not this app's verification key. Serve exactly the key shown below, as text/plain, and try again.", domain, len(got)))
	}
	return nil
}

// fetchProof returns the body of http://<domain>/__presence.
func (s *Server) fetchProof(ctx context.Context, domain string) (string, error) {
	host, port := domain, "80"
	if h, p, err := net.SplitHostPort(domain); err == nil {
		host, port = h, p
	}
	ctx, cancel := context.WithTimeout(ctx, s.verifyTimeout)
	defer cancel()
	addr, err := s.pickAddress(ctx, host)
	if err != nil {
		return "", err
	}
	pinned := addr
	dialer := &net.Dialer{
		Timeout: s.verifyTimeout,
		// Control sees the address really dialled: the pin, nothing else.
		Control: func(_, address string, _ syscall.RawConn) error {
			ap, err := netip.ParseAddrPort(address)
			if err != nil || ap.Addr().Unmap() != pinned.Unmap() {
				return verifyError("refused to connect to an address that was not checked")
			}
			return nil
		},
	}
	tr := &http.Transport{
		Proxy: nil,
		DialContext: func(ctx context.Context, _, hostport string) (net.Conn, error) {
			_, p, err := net.SplitHostPort(hostport)
			if err != nil {
				return nil, err
			}
			return dialer.DialContext(ctx, "tcp", net.JoinHostPort(pinned.String(), p))
		},
		DisableKeepAlives:      true,
		MaxResponseHeaderBytes: 16 << 10,
		TLSHandshakeTimeout:    s.verifyTimeout,
		ResponseHeaderTimeout:  s.verifyTimeout,
	}
	defer tr.CloseIdleConnections()
	start := &url.URL{Scheme: "http", Host: domain, Path: "/__presence"}
	client := &http.Client{
		Transport: tr,
		Timeout:   s.verifyTimeout,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= 3 {
				return verifyError("too many redirects (at most 3)")
			}
			if !sameOrigin(start, req.URL) {
				return verifyError(fmt.Sprintf("http://%s/__presence redirected off the domain, to %s; serve the key on %s itself", domain, req.URL.Redacted(), domain))
			}
			return nil
		},
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, start.String(), nil)
	if err != nil {
		return "", verifyError("the domain is not a valid host name")
	}
	req.Header.Set("User-Agent", "Presence domain verification")
	req.Header.Set("Accept", "text/plain")
	resp, err := client.Do(req)
	if err != nil {
		return "", s.describeFetchError(domain, addr, port, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", verifyError(fmt.Sprintf("http://%s/__presence answered HTTP %d; it must answer 200 with the key", domain, resp.StatusCode))
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxProofBytes+1))
	if err != nil {
		return "", s.describeFetchError(domain, addr, port, err)
	}
	if len(body) > maxProofBytes {
		return "", verifyError(fmt.Sprintf("http://%s/__presence answered more than 8 KiB; serve only the key", domain))
	}
	return string(body), nil
}

// pickAddress resolves host once and returns the address to pin.
func (s *Server) pickAddress(ctx context.Context, host string) (netip.Addr, error) {
	var addrs []netip.Addr
	if a, err := netip.ParseAddr(host); err == nil {
		addrs = []netip.Addr{a}
	} else {
		ips, err := s.resolver.LookupIPAddr(ctx, host)
		if err != nil || len(ips) == 0 {
			return netip.Addr{}, verifyError(fmt.Sprintf("could not resolve %s: check its DNS records", host))
		}
		for _, ip := range ips {
			if a, ok := netip.AddrFromSlice(ip.IP); ok && ip.Zone == "" {
				addrs = append(addrs, a.Unmap())
			}
		}
	}
	if len(addrs) == 0 {
		return netip.Addr{}, verifyError(fmt.Sprintf("%s has no usable address", host))
	}
	if !s.cfg.Registration.AllowPrivateDomains {
		// One bad address refuses all: a name that mixes public and
		// private addresses is how rebinding attacks start.
		for _, a := range addrs {
			if !publicAddr(a) {
				return netip.Addr{}, verifyError(fmt.Sprintf("%s resolves to %s, a private, loopback or otherwise reserved address; this server only verifies public domains", host, a))
			}
		}
	}
	return addrs[0], nil
}

// sameOrigin allows a redirect to the same host name only: the same port
// when the domain names one, else the default port of either scheme (so
// http → https on the same name works). Anything else is off the domain.
func sameOrigin(start, next *url.URL) bool {
	if !strings.EqualFold(start.Hostname(), next.Hostname()) {
		return false
	}
	switch next.Scheme {
	case "http", "https":
	default:
		return false
	}
	if start.Port() != "" {
		return next.Port() == start.Port()
	}
	return next.Port() == "" || (next.Scheme == "http" && next.Port() == "80") || (next.Scheme == "https" && next.Port() == "443")
}

// describeFetchError turns a transport error into a sentence.
func (s *Server) describeFetchError(domain string, addr netip.Addr, port string, err error) error {
	var ve verifyError
	if errors.As(err, &ve) {
		return ve
	}
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
		return verifyError(fmt.Sprintf("http://%s/__presence did not answer within %s", domain, s.verifyTimeout))
	}
	if errors.Is(err, syscall.ECONNREFUSED) {
		return verifyError(fmt.Sprintf("could not connect to %s: connection refused", net.JoinHostPort(addr.String(), port)))
	}
	s.log.Info("admin: verification fetch failed", "domain", domain, "err", err)
	return verifyError(fmt.Sprintf("could not fetch http://%s/__presence (%s)", domain, shortErr(err)))
}

// shortErr is the innermost message of err, without Go's URL wrapping.
func shortErr(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	msg := err.Error()
	if len(msg) > 200 {
		msg = msg[:200] + "…"
	}
	return msg
}
