package jetstream

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/synadia-io/orbit.go/jetstreamext"
)

// publishAttempt bounds one try of a batch publish. A try sent to a
// stream leader that died has no answer coming; it is sent again after
// publishAttempt (a new leader is elected well within it: a server shut
// down hands its leaderships over), rather than held for requestTimeout,
// as an ack is (ackAttempt). A batch's first message carries a JetStream
// message id (Nats-Msg-Id), so a second try of a batch that the first
// stored is refused as a duplicate, never stored twice (storeBatch).
const publishAttempt = time.Second

// duplicateWindow is how long the stream remembers a message id
// (the stream's duplicate_window). A second try is sent at most
// requestTimeout after the first, so twice that covers it; a longer
// window only costs the servers memory, an entry per batch stored.
const duplicateWindow = 2 * requestTimeout

// JetStream's answers that a message id was seen before
// (nats-server's jetstream_errors_generated.go).
const (
	// errCodeBatchDuplicateMsgID: an atomic batch holds a message whose id
	// the stream has stored (JSAtomicPublishContainsDuplicateMessageErr);
	// the whole batch is refused and the answer carries no sequence.
	errCodeBatchDuplicateMsgID jetstream.ErrorCode = 10201
	// errCodeDuplicateInProcess: the id's message was proposed by this
	// leader and is not applied yet (JSStreamDuplicateMessageConflict).
	errCodeDuplicateInProcess jetstream.ErrorCode = 10158
)

// storeBatch publishes msgs, the first with a Nats-Msg-Id of its own, as
// one atomic batch and returns the stream sequence of its first message (an
// atomic batch is stored as one step: its messages have consecutive
// sequences). A try whose answer does not come within publishAttempt, or
// is lost with the server that should have sent it, is sent again, with
// the same id, until ctx ends:
//
//   - if the first try was not stored, the second is, as any batch;
//   - if it was, the stream refuses the second whole as a duplicate
//     (nats-server 2.15: processJetStreamAtomicBatchMsg checks every
//     message's id before the commit is proposed, and answers 10201
//     without the stored sequence), and storedAt asks for the sequence.
//
// A batch of one message is a plain publish (atomicity is trivial for
// one message, and it costs the leader one step instead of two), whose
// duplicate is answered with the stored sequence at once.
//
// A new stream leader applies what its predecessor committed before it
// takes writes (raft's aflr), so the id of a first try stored by the
// old leader is known to the new one when the second try reaches it.
// An answer from JetStream's API (a refusal) is returned as it is.
func storeBatch(ctx context.Context, js jetstream.JetStream, msgs []*nats.Msg) (uint64, error) {
	n := uint64(len(msgs))
	backoff := 10 * time.Millisecond
	for {
		attempt := publishAttempt
		if d, ok := ctx.Deadline(); ok {
			attempt = min(attempt, max(time.Until(d), time.Millisecond))
		}
		actx, cancel := context.WithTimeout(ctx, attempt)
		var (
			last uint64 // the sequence of the batch's last message
			err  error
		)
		if n == 1 {
			// One message is stored whole or not at all by a plain
			// publish, which costs the leader one step where an atomic
			// batch costs two (stage, then commit).
			last, err = publishOne(actx, js, msgs[0])
		} else {
			var ack *jetstreamext.BatchAck
			ack, err = jetstreamext.PublishMsgBatch(actx, js, msgs,
				jetstreamext.BatchFlowControl{AckFirst: true, AckTimeout: attempt})
			if err == nil {
				if ack.BatchSize != n {
					err = fmt.Errorf("batch of %d acknowledged as %d up to sequence %d", n, ack.BatchSize, ack.Sequence)
				}
				last = ack.Sequence
			}
		}
		cancel()
		if err == nil {
			if last < n {
				return 0, fmt.Errorf("batch of %d acknowledged up to sequence %d", n, last)
			}
			return last - n + 1, nil
		}
		var apiErr *jetstream.APIError
		if errors.As(err, &apiErr) {
			switch apiErr.ErrorCode {
			case errCodeBatchDuplicateMsgID, errCodeDuplicateInProcess:
				seq, stored, perr := storedAt(ctx, js, msgs[0])
				if perr != nil {
					return 0, perr
				}
				if stored {
					return seq, nil
				}
				// Not stored after all: send it again.
			case jetstreamext.JSErrCodeBatchPublishIncomplete:
				// The leader changed while the batch was staged: the new
				// one never saw its first messages. Nothing was stored.
			default:
				return 0, err
			}
		}
		// Otherwise the try had no answer (its server was lost, or the
		// answer came too late), or met no responder (no server knows
		// the stream yet: just created, or moving). Either is sent again.
		select {
		case <-ctx.Done():
			return 0, err
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 250*time.Millisecond)
	}
}

// publishOne publishes m alone and returns its sequence. A duplicate of
// a stored message id is answered with the stored message's sequence: it
// is the first try's, stored.
func publishOne(ctx context.Context, js jetstream.JetStream, m *nats.Msg) (uint64, error) {
	resp, err := js.Conn().RequestMsgWithContext(ctx, m)
	if err != nil {
		return 0, err
	}
	var ack struct {
		Error    *jetstream.APIError `json:"error"`
		Stream   string              `json:"stream"`
		Sequence uint64              `json:"seq"`
	}
	if err := json.Unmarshal(resp.Data, &ack); err != nil {
		return 0, jetstream.ErrInvalidJSAck
	}
	if ack.Error != nil {
		return 0, ack.Error
	}
	if ack.Stream == "" || ack.Sequence == 0 {
		return 0, jetstream.ErrInvalidJSAck
	}
	return ack.Sequence, nil
}

// storedAt asks the stream's leader whether it stored m's message id, and
// at which sequence, without storing anything: it publishes m's id alone
// with an expected last sequence that no stream reaches. The leader
// checks the id first (a duplicate is answered with the stored sequence,
// as for any publish) and the expected sequence only after, refusing
// what it has not seen. An id whose message the leader has proposed but
// not yet applied is asked again.
func storedAt(ctx context.Context, js jetstream.JetStream, m *nats.Msg) (seq uint64, stored bool, err error) {
	probe := &nats.Msg{Subject: m.Subject, Header: nats.Header{}}
	probe.Header.Set(jetstream.MsgIDHeader, m.Header.Get(jetstream.MsgIDHeader))
	probe.Header.Set(jetstream.ExpectedLastSeqHeader, strconv.FormatUint(math.MaxUint64, 10))
	for {
		resp, err := whileNoResponders(ctx, func() (*nats.Msg, error) {
			actx, cancel := context.WithTimeout(ctx, publishAttempt)
			defer cancel()
			return js.Conn().RequestMsgWithContext(actx, probe)
		})
		if err == nil {
			var ack struct {
				Error     *jetstream.APIError `json:"error"`
				Sequence  uint64              `json:"seq"`
				Duplicate bool                `json:"duplicate"`
			}
			if err := json.Unmarshal(resp.Data, &ack); err != nil {
				return 0, false, fmt.Errorf("stored batch: %w", err)
			}
			switch {
			case ack.Error == nil && ack.Duplicate && ack.Sequence > 0:
				return ack.Sequence, true, nil
			case ack.Error == nil:
				return 0, false, fmt.Errorf("stored batch: a probe was answered as stored at %d", ack.Sequence)
			case ack.Error.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
				ack.Error.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant:
				return 0, false, nil
			case ack.Error.ErrorCode != errCodeDuplicateInProcess:
				return 0, false, fmt.Errorf("stored batch: %w", ack.Error)
			}
		}
		select {
		case <-ctx.Done():
			if err == nil {
				err = ctx.Err()
			}
			return 0, false, err
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// publishBatch publishes msgs as one atomic batch, retrying while the
// server the client is connected to knows of no stream for the subjects
// (nats.ErrNoResponders). That happens for a moment after a stream is
// created or moves, while its interest travels over the routes. A batch
// that met no responder was stored nowhere (a stream applies a batch only
// on its commit message), so sending it again cannot store it twice.
// Any other error, or ctx ending, is returned as it is. (Notifications
// use storeBatch, which also sends a batch again after a lost answer.)
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
