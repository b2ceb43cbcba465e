package jetstream

import (
	"context"
	"errors"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/synadia-io/orbit.go/jetstreamext"
)

// publishBatch publishes msgs as one atomic batch, retrying while the
// server the client is connected to knows of no stream for the subjects
// (nats.ErrNoResponders). That happens for a moment after a stream is
// created or moves, while its interest travels over the routes. A batch
// that met no responder was stored nowhere (a stream applies a batch only
// on its commit message), so sending it again cannot store it twice.
// Any other error, or ctx ending, is returned as it is.
func publishBatch(ctx context.Context, js jetstream.JetStream, msgs []*nats.Msg) (*jetstreamext.BatchAck, error) {
	return whileNoResponders(ctx, func() (*jetstreamext.BatchAck, error) {
		return jetstreamext.PublishMsgBatch(ctx, js, msgs)
	})
}

// whileNoResponders calls do again, backing off, while it fails with
// nats.ErrNoResponders (no server knows the stream yet), until ctx ends.
func whileNoResponders[T any](ctx context.Context, do func() (T, error)) (T, error) {
	backoff := 10 * time.Millisecond
	for {
		v, err := do()
		if !errors.Is(err, nats.ErrNoResponders) {
			return v, err
		}
		select {
		case <-ctx.Done():
			return v, err
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 250*time.Millisecond)
	}
}
