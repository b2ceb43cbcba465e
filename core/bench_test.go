package core_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/presence-service/presence/core"
)

// nullSink is an app channel that keeps what it is sent in a coalescing
// outbox and drops it when full, like a real one whose writer keeps up.
type nullSink struct{ out *core.StatusOutbox }

func (s nullSink) SendStatus(u core.StatusUpdate) {
	s.out.Push(u)
	if s.out.Len() > 1000 {
		s.out.Take(nil)
	}
}
func (nullSink) Close(core.Errno) {}

// BenchmarkRouteStatus measures one status update from a device to the
// outbox of an attached app, through aggregation and fan-out: the
// router's hot path. Users are spread so that shards share the load.
func BenchmarkRouteStatus(b *testing.B) {
	f := newFixture(&testing.T{}, 0)
	ctx := context.Background()
	if _, err := f.router.AttachApp(ctx, f.app, nullSink{core.NewStatusOutbox()}, core.AttachOptions{}); err != nil {
		b.Fatal(err)
	}
	const users = 1000
	sessions := make([]*core.Session, users)
	for i := range sessions {
		email := fmt.Sprintf("user%d@example.com", i)
		f.grant(email, f.app)
		sessions[i], _ = f.connect(email, "phone", f.app)
	}
	statuses := []core.Presence{{Status: core.Online}, {Status: core.Unavailable, Message: "away"}}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			s := sessions[i%users]
			if err := f.router.SetStatus(s, statuses[(i/users)%2], nil); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
}

// BenchmarkOutboxPushTake measures the coalescing queue between the
// router and an app channel's writer.
func BenchmarkOutboxPushTake(b *testing.B) {
	o := core.NewStatusOutbox()
	puids := make([]string, 64)
	for i := range puids {
		puids[i] = core.NewPUID()
	}
	var buf []core.StatusUpdate
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		o.Push(core.StatusUpdate{PUID: puids[i%64], Status: core.Online})
		if i%64 == 63 {
			buf = o.Take(buf[:0])
		}
	}
}

// BenchmarkOutboxTakeOneAfterBurst is the usual turn of a writer that
// keeps up: one update pending, in an outbox a burst once grew to 2,000
// PUIDs.
func BenchmarkOutboxTakeOneAfterBurst(b *testing.B) {
	o := core.NewStatusOutbox()
	puids := make([]string, 2000)
	for i := range puids {
		puids[i] = core.NewPUID()
		o.Push(core.StatusUpdate{PUID: puids[i], Status: core.Online})
	}
	buf := o.Take(nil)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		o.Push(core.StatusUpdate{PUID: puids[i%len(puids)], Status: core.Online})
		buf = o.Take(buf[:0])
	}
}
