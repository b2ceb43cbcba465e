package natstest_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/presence-service/presence/internal/natstest"
)

// A stream with three replicas keeps every message it acknowledged when
// the server leading it is lost, takes new messages on the other two, and
// the lost server, back, catches up with what it missed.
func TestR3StreamSurvivesLossOfOneServer(t *testing.T) {
	c := natstest.Start(t, 3)
	js, err := jetstream.New(c.Connect())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	s, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "T", Subjects: []string{"t.>"}, Replicas: 3})
	if err != nil {
		t.Fatal(err)
	}
	const before, after = 20, 20
	for i := range before {
		if _, err := js.Publish(ctx, "t.x", fmt.Appendf(nil, "%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	lost := c.Index(info.Cluster.Leader)
	if lost < 0 {
		t.Fatalf("stream leader %q is none of the servers", info.Cluster.Leader)
	}
	c.Kill(lost)

	// Publishing waits out the election of a new leader; the client,
	// connected to every server, moves off the lost one by itself.
	for i := before; i < before+after; i++ {
		for {
			_, err := js.Publish(ctx, "t.x", fmt.Appendf(nil, "%d", i))
			if err == nil {
				break
			}
			if ctx.Err() != nil {
				t.Fatalf("publish %d after losing %s: %v", i, c.Name(lost), err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	for seq := uint64(1); seq <= before+after; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if err != nil {
			t.Fatalf("message %d after losing %s: %v", seq, c.Name(lost), err)
		}
		if want := fmt.Sprint(seq - 1); string(m.Data) != want {
			t.Fatalf("message %d = %q, want %q", seq, m.Data, want)
		}
	}

	c.Restart(lost)
	for {
		info, err := s.Info(ctx)
		if err == nil && len(info.Cluster.Replicas) == 2 && allCurrent(info) && info.State.Msgs == before+after {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("%s back: replicas never all current: %+v, %v", c.Name(lost), info, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func allCurrent(info *jetstream.StreamInfo) bool {
	for _, p := range info.Cluster.Replicas {
		if !p.Current || p.Offline {
			return false
		}
	}
	return true
}

// MoveStreamLeader hands a stream's leadership to the server asked for,
// and StreamLeader says so.
func TestMoveStreamLeader(t *testing.T) {
	c := natstest.Start(t, 3)
	js, err := jetstream.New(c.Connect())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "L", Subjects: []string{"l.>"}, Replicas: 3}); err != nil {
		t.Fatal(err)
	}
	first := c.StreamLeader("L")
	if first < 0 {
		t.Fatal("no leader of a stream just created")
	}
	for _, want := range []int{(first + 1) % 3, (first + 2) % 3} {
		c.MoveStreamLeader("L", want)
		if got := c.StreamLeader("L"); got != want {
			t.Fatalf("led by server %d after moving it to %d", got, want)
		}
	}
}
