package jetstream

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/synadia-io/orbit.go/jetstreamext"
)

// readBatch is how many messages one direct-get request asks for.
const readBatch = 500

// requestTimeout bounds each request to the servers, whatever the
// caller's context allows: a request lost in a failover (its server died
// with it) fails in this time instead of holding its caller, who may then
// try again.
const requestTimeout = 5 * time.Second

// readAll reads every message of stream whose subject matches filter, in
// stream order, a batch per request (PROTOCOL's queues are short: a
// user's fit in one or two).
func readAll(ctx context.Context, js jetstream.JetStream, stream, filter string) ([]*jetstream.RawStreamMsg, error) {
	var out []*jetstream.RawStreamMsg
	seq := uint64(1)
	for {
		msgs, none, err := readBatchFrom(ctx, js, stream, filter, seq)
		if err != nil {
			return nil, fmt.Errorf("jetstream: read %s: %w", filter, err)
		}
		out = append(out, msgs...)
		if none {
			return out, nil
		}
		last := msgs[len(msgs)-1]
		seq = last.Sequence + 1
		// The last message says how many more match.
		if last.Header.Get("Nats-Num-Pending") == "0" {
			return out, nil
		}
	}
}

// readBatchFrom reads one batch from seq on; none says that the stream
// has no more. The batch ends early, without an error, when the answer
// stalls (jetstreamext's iterator ends on a timeout): a batch with no
// message and no "none" is an error, a shorter one is read on from.
func readBatchFrom(ctx context.Context, js jetstream.JetStream, stream, filter string, seq uint64) (msgs []*jetstream.RawStreamMsg, none bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	it, err := jetstreamext.GetBatch(ctx, js, stream, readBatch,
		jetstreamext.GetBatchSeq(seq), jetstreamext.GetBatchSubject(filter))
	if err != nil {
		return nil, false, err
	}
	for m, err := range it {
		if errors.Is(err, jetstreamext.ErrNoMessages) {
			return msgs, true, nil
		}
		if err != nil {
			return nil, false, err
		}
		msgs = append(msgs, m)
	}
	if len(msgs) == 0 {
		if err := ctx.Err(); err != nil {
			return nil, false, err
		}
		return nil, false, errors.New("no answer")
	}
	return msgs, false, nil
}
