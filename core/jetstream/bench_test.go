package jetstream_test

import (
	"context"
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/presence-service/presence/core"
)

// The notification benchmarks mirror core/sqlite's of the same names, on
// three embedded NATS servers with R3 in the benchmark's own process (so
// the CPU they report is the whole cluster's plus the callers'). Grants
// come from a map: the registry's cost is not in these figures.

func benchEnv(b *testing.B, nPUIDs int) (*env, []string) {
	e := newEnvTB(b, 100)
	puids := make([]string, nPUIDs)
	for i := range puids {
		puids[i] = e.grants.add(fmt.Sprint("user", i), 1, fmt.Sprint("puid-", i))
	}
	return e, puids
}

// BenchmarkAddNotificationSingle: about 64 concurrent callers, one item
// each, as many small POSTs would be.
func BenchmarkAddNotificationSingle(b *testing.B) {
	e, puids := benchEnv(b, 1000)
	runAdds(b, e, 64, 1, puids)
}

// BenchmarkAddNotificationBatch100: one caller sending batches of 100
// items over 10 PUIDs.
func BenchmarkAddNotificationBatch100(b *testing.B) {
	e, puids := benchEnv(b, 1000)
	runAdds(b, e, 1, 100, puids)
}

// BenchmarkAddNotificationBatch100Parallel: about 16 callers sending
// batches of 100 at once.
func BenchmarkAddNotificationBatch100Parallel(b *testing.B) {
	e, puids := benchEnv(b, 1000)
	runAdds(b, e, 16, 100, puids)
}

func runAdds(b *testing.B, e *env, callers, batch int, puids []string) {
	ctx := context.Background()
	b.SetParallelism(max(1, callers/runtime.GOMAXPROCS(0)))
	var next atomic.Uint64
	add := func(items []core.NotificationInput) error {
		n := next.Add(1)
		for i := range items {
			items[i] = core.NotificationInput{PUID: puids[(n*10+uint64(i%10))%uint64(len(puids))],
				Message: "Fred mentioned you in #beer", Action: "https://beerchat.example/r/beer"}
		}
		_, _, err := e.n.AddNotifications(ctx, 1, items, time.Now(), 0, 0)
		return err
	}
	cpu0 := cpuTime()
	start := time.Now()
	b.ResetTimer()
	if callers == 1 {
		items := make([]core.NotificationInput, batch)
		for b.Loop() {
			if err := add(items); err != nil {
				b.Fatal(err)
			}
		}
	} else {
		b.RunParallel(func(pb *testing.PB) {
			items := make([]core.NotificationInput, batch)
			for pb.Next() {
				if err := add(items); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	b.StopTimer()
	items := float64(batch * b.N)
	b.ReportMetric(items/time.Since(start).Seconds(), "items/s")
	b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/items, "cpu-µs/item")
}
