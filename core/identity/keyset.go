package identity

import (
	"context"
	"errors"

	"github.com/coreos/go-oidc/v3/oidc"
)

// recordingKeySet wraps go-oidc's RemoteKeySet to learn why a signature
// check failed. go-oidc formats the key set's error with %v, which loses its
// type; the user deserves to know whether their token is bad or the issuer
// is down, so the wrapper leaves the error in a keysOutcome that the caller
// put in the context.
type recordingKeySet struct {
	inner oidc.KeySet
}

type keysOutcomeKey struct{}

// keysOutcome is written by at most one VerifySignature of one Verify call.
type keysOutcome struct {
	err error
}

func (k recordingKeySet) VerifySignature(ctx context.Context, jwt string) ([]byte, error) {
	payload, err := k.inner.VerifySignature(ctx, jwt)
	if err != nil {
		if rec, ok := ctx.Value(keysOutcomeKey{}).(*keysOutcome); ok {
			rec.err = err
		}
	}
	return payload, err
}

// unavailable reports whether the keys could not be fetched (the issuer is
// down or slow, or the caller gave up), as opposed to no key matching.
// RemoteKeySet wraps fetch failures ("fetching keys %w") and returns a bare
// error when the signature matches no key; TestJWKSDown pins this down.
func (o *keysOutcome) unavailable() bool {
	if o.err == nil {
		return false
	}
	return errors.Unwrap(o.err) != nil ||
		errors.Is(o.err, context.DeadlineExceeded) || errors.Is(o.err, context.Canceled)
}
