package identity

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/presence-service/presence/core"
)

// maxVerifierReply caps what we read of a verifier's answer: a real one is
// a few hundred bytes, and a broken or hostile one must not fill memory.
const maxVerifierReply = 64 << 10

// BrowserIDConfig configures the remote verifier (auth.verifier = "browserid").
type BrowserIDConfig struct {
	VerifierURL string // auth.verifier_url
	Audience    string // auth.audience: the origin the assertions are for

	Timeout    time.Duration    // per verification; 0: DefaultTimeout
	HTTPClient *http.Client     // nil: a client whose Timeout is Timeout
	Now        func() time.Time // nil: time.Now
}

// BrowserID checks assertions with a remote verifier speaking the Persona /
// Firefox Accounts verifier protocol: POST {"assertion", "audience"} as
// JSON, answer {"status": "okay", "email", "audience", "expires" (ms)} or
// {"status": "failure", "reason"}. It is safe for concurrent use.
type BrowserID struct {
	cfg    BrowserIDConfig
	client *http.Client
}

var _ core.Verifier = (*BrowserID)(nil)

// NewBrowserID checks the configuration; it makes no request.
func NewBrowserID(cfg BrowserIDConfig) (*BrowserID, error) {
	if cfg.VerifierURL == "" || cfg.Audience == "" {
		return nil, errors.New("browserid: verifier url and audience are required")
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	client := cfg.HTTPClient
	if client == nil {
		client = &http.Client{Timeout: cfg.Timeout}
	}
	return &BrowserID{cfg: cfg, client: client}, nil
}

type browserIDReply struct {
	Status   string `json:"status"`
	Email    string `json:"email"`
	Audience string `json:"audience"`
	Expires  int64  `json:"expires"` // ms since the epoch
	Reason   string `json:"reason"`
}

// errUnavailable is the reason a device reads when the verifier cannot
// answer: the assertion may be fine, so the device may retry later.
const errUnavailable = "identity verifier unavailable"

// Verify asks the verifier. It returns within Timeout whatever the verifier
// does: down, slow, or answering garbage all give errno 34 with a reason.
func (b *BrowserID) Verify(ctx context.Context, assertion string) (core.Identity, error) {
	if assertion == "" {
		return core.Identity{}, core.Errorf(core.ErrnoInvalidAssertion, "invalid assertion: empty")
	}
	body, _ := json.Marshal(map[string]string{"assertion": assertion, "audience": b.cfg.Audience})
	ctx, cancel := context.WithTimeout(ctx, b.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, b.cfg.VerifierURL, bytes.NewReader(body))
	if err != nil {
		return core.Identity{}, &core.Error{Errno: core.ErrnoInvalidAssertion, Reason: errUnavailable, Err: err}
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := b.client.Do(req)
	if err != nil {
		return core.Identity{}, &core.Error{Errno: core.ErrnoInvalidAssertion, Reason: errUnavailable, Err: err}
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxVerifierReply+1))
	if err != nil {
		return core.Identity{}, &core.Error{Errno: core.ErrnoInvalidAssertion, Reason: errUnavailable, Err: err}
	}
	if len(raw) > maxVerifierReply {
		return core.Identity{}, &core.Error{Errno: core.ErrnoInvalidAssertion, Reason: errUnavailable,
			Err: fmt.Errorf("browserid: reply over %d bytes", maxVerifierReply)}
	}
	var r browserIDReply
	if err := json.Unmarshal(raw, &r); err != nil || r.Status == "" {
		// Not the protocol: a proxy's error page, a 502, a wrong URL.
		return core.Identity{}, &core.Error{Errno: core.ErrnoInvalidAssertion, Reason: errUnavailable,
			Err: fmt.Errorf("browserid: HTTP %d, not a verifier reply: %q", resp.StatusCode, truncate(string(raw), 200))}
	}
	return b.identity(r)
}

// identity turns a protocol reply into an identity or a reason.
func (b *BrowserID) identity(r browserIDReply) (core.Identity, error) {
	if r.Status != "okay" {
		reason := clean(r.Reason)
		if reason == "" {
			reason = "status " + clean(r.Status)
		}
		// The protocol has no error codes; Persona-compatible verifiers say
		// "assertion has expired", and errno 35 tells the device that a
		// fresh assertion, not a different account, is what it needs.
		if strings.Contains(strings.ToLower(reason), "expired") {
			return core.Identity{}, core.Errorf(core.ErrnoExpiredAssertion, "assertion expired: %s", reason)
		}
		return core.Identity{}, core.Errorf(core.ErrnoInvalidAssertion, "invalid assertion: %s", reason)
	}
	email := strings.ToLower(strings.TrimSpace(r.Email))
	if email == "" || !strings.Contains(email, "@") {
		return core.Identity{}, core.Errorf(core.ErrnoInvalidAssertion, "invalid assertion: the verifier vouched for no email")
	}
	// The verifier checked the audience we sent; a different one echoed
	// back means it checked something else, so believe nothing.
	if r.Audience != "" && r.Audience != b.cfg.Audience {
		return core.Identity{}, core.Errorf(core.ErrnoInvalidAssertion, "invalid assertion: wrong audience")
	}
	id := core.Identity{Subject: email, Email: email}
	if r.Expires > 0 {
		id.Expires = time.UnixMilli(r.Expires)
		if !b.cfg.Now().Before(id.Expires) {
			return core.Identity{}, core.Errorf(core.ErrnoExpiredAssertion, "assertion expired at %s", id.Expires.UTC().Format(time.RFC3339))
		}
	}
	return id, nil
}

// clean makes a remote reason fit to show a user: printable, one line, short.
func clean(s string) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsPrint(r) {
			return r
		}
		return ' '
	}, s)
	return truncate(strings.TrimSpace(s), 200)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	// Cut on a rune boundary.
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}
