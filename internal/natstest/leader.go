package natstest

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// StreamLeader is the index of the server that leads stream now, or -1
// when it has no leader (an election is under way) or cannot be read.
func (c *Cluster) StreamLeader(stream string) int {
	c.tb.Helper()
	nc, err := nats.Connect(c.URL())
	if err != nil {
		c.tb.Fatalf("natstest: connect: %v", err)
	}
	defer nc.Close()
	return c.streamLeader(nc, stream)
}

func (c *Cluster) streamLeader(nc *nats.Conn, stream string) int {
	js, err := jetstream.New(nc)
	if err != nil {
		return -1
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return -1
	}
	info := s.CachedInfo()
	if info.Cluster == nil {
		return -1
	}
	return c.Index(info.Cluster.Leader)
}

// MoveStreamLeader makes server i the leader of stream, by asking the
// current leader to step down in i's favour (JetStream's preferred
// placement), and waits until i leads it. Tests use it to lose, on
// purpose, the server that a stream's writes go through.
func (c *Cluster) MoveStreamLeader(stream string, i int) {
	c.tb.Helper()
	nc, err := nats.Connect(c.URL())
	if err != nil {
		c.tb.Fatalf("natstest: connect: %v", err)
	}
	defer nc.Close()
	req, _ := json.Marshal(server.JSApiLeaderStepdownRequest{Placement: &server.Placement{Preferred: c.Name(i)}})
	deadline := time.Now().Add(readyTimeout)
	for {
		leader := c.streamLeader(nc, stream)
		if leader == i {
			return
		}
		if time.Now().After(deadline) {
			c.tb.Fatalf("natstest: %s still led by server %d, not %d, after %v", stream, leader, i, readyTimeout)
		}
		// A refusal (an election already under way) is asked again; an
		// accepted step-down is given a few seconds to elect server i.
		if leader >= 0 && c.stepDown(nc, stream, req) {
			for wait := time.Now().Add(5 * time.Second); time.Now().Before(wait); {
				if c.streamLeader(nc, stream) == i {
					return
				}
				time.Sleep(50 * time.Millisecond)
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// stepDown asks stream's leader to step down; it reports whether the
// leader agreed.
func (c *Cluster) stepDown(nc *nats.Conn, stream string, req []byte) bool {
	msg, err := nc.Request(fmt.Sprintf(server.JSApiStreamLeaderStepDownT, stream), req, 2*time.Second)
	if err != nil {
		return false
	}
	var res server.JSApiStreamLeaderStepDownResponse
	return json.Unmarshal(msg.Data, &res) == nil && res.Success
}
