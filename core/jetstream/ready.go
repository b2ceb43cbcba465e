package jetstream

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Error codes the NATS server answers while its JetStream cluster is
// still forming (nats-server's JSClusterNoPeersErr, JSClusterNotAvailErr).
const (
	errCodeNoPeers     jetstream.ErrorCode = 10005 // "no suitable peers for placement": peers still joining
	errCodeClusterBusy jetstream.ErrorCode = 10008 // "JetStream system temporarily unavailable": no meta leader
)

// createAttemptTimeout bounds one stream creation: without a meta leader
// the request is never answered, and a short bound turns that wait into
// a retry.
const createAttemptTimeout = 2 * time.Second

// waitReport is how often a start still waiting for JetStream says so.
const waitReport = 3 * time.Second

// ErrNotReady wraps the last error when JetStream did not become ready
// before the start's context ended.
var ErrNotReady = errors.New("JetStream did not become ready")

// createStream creates or updates a stream, retrying while JetStream is
// not ready yet (servers just started, meta leader not elected, peers
// joining) until ctx ends. Any other error is returned at once: a bad
// setting must not look like a slow cluster. waiting, if set, hears the
// not-ready error at most once per waitReport.
func createStream(ctx context.Context, js jetstream.JetStream, cfg jetstream.StreamConfig, waiting func(error)) error {
	backoff := 100 * time.Millisecond
	var reported time.Time
	for {
		actx, cancel := context.WithTimeout(ctx, createAttemptTimeout)
		_, err := js.CreateOrUpdateStream(actx, cfg)
		cancel()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("%w: %v", ErrNotReady, err)
		}
		if !notReady(err) {
			return err
		}
		if waiting != nil && time.Since(reported) >= waitReport {
			reported = time.Now()
			waiting(err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: %v", ErrNotReady, err)
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, time.Second)
	}
}

// notReady says whether err is one JetStream answers while it is still
// forming, and which a later attempt may not get.
func notReady(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) || // one attempt unanswered: no meta leader
		errors.Is(err, jetstream.ErrJetStreamNotEnabled) ||
		errors.Is(err, nats.ErrNoResponders) || errors.Is(err, jetstream.ErrNoStreamResponse) {
		return true
	}
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) {
		switch apiErr.ErrorCode {
		case errCodeNoPeers, errCodeClusterBusy, jetstream.JSErrCodeJetStreamNotEnabled:
			return true
		}
	}
	return false
}
