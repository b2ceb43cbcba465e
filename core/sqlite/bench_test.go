package sqlite_test

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/presence-service/presence/core"
	"github.com/presence-service/presence/core/sqlite"
)

// benchGrants creates n grants of one app, from several goroutines so
// that the set-up itself rides on group commit.
func benchGrants(b *testing.B, db *sqlite.DB, n int) (core.AppID, []string) {
	b.Helper()
	ctx := context.Background()
	app := MustApp(b, db, "bench@example.com")
	puids := make([]string, n)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for w := range 32 {
		wg.Go(func() {
			for i := w; i < n; i += 32 {
				user := fmt.Sprint("user", i)
				if err := db.UpsertUser(ctx, core.User{ID: user, Email: user}); err != nil {
					errs <- err
					return
				}
				g, _, err := db.Grant(ctx, user, app.ID, "U", fmt.Sprint("puid-", i))
				if err != nil {
					errs <- err
					return
				}
				puids[i] = g.PUID
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	return app.ID, puids
}

// cpuTime is the process's CPU time (user and system) so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// written is the bytes the process has handed to write(2) so far
// (/proc/self/io wchar): the WAL's frames and the checkpoints' copies,
// both in proportion to the pages that commits dirty.
func written() uint64 {
	b, err := os.ReadFile("/proc/self/io")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "wchar: "); ok {
			n, _ := strconv.ParseUint(v, 10, 64)
			return n
		}
	}
	return 0
}

// usage is the process's CPU time and bytes written so far.
type usage struct {
	cpu   time.Duration
	wchar uint64
}

func usageNow() usage { return usage{cpuTime(), written()} }

// reportItems adds items/s, the process's CPU time per item (steadier
// than items/s on a machine shared with other work), the pages written
// per item (WAL and checkpoints, from wchar) and the mean number of
// writes per commit.
func reportItems(b *testing.B, db *sqlite.DB, items int, u0 usage, commits0, written0 uint64) {
	b.ReportMetric(float64(items)/b.Elapsed().Seconds(), "items/s")
	u := usageNow()
	b.ReportMetric(float64((u.cpu-u0.cpu).Microseconds())/float64(items), "cpu-µs/item")
	b.ReportMetric(float64(u.wchar-u0.wchar)/4096/float64(items), "pages-written/item")
	commits, written := db.CommitStats()
	if c := commits - commits0; c > 0 {
		b.ReportMetric(float64(written-written0)/float64(c), "writes/commit")
	}
}

// BenchmarkAddNotificationSingle is the notification endpoint under load:
// about 64 concurrent callers, one item each, as many small POSTs would be.
func BenchmarkAddNotificationSingle(b *testing.B) {
	db := MustOpenDB(b)
	app, puids := benchGrants(b, db, 1000)
	runAdds(b, db, app, 64, 1, inTurn(puids))
}

// runAdds is the timed part of the concurrent notification benchmarks:
// about callers goroutines, each storing batch items per call, item i of
// the n-th call for the PUID puid(n, i).
func runAdds(b *testing.B, db *sqlite.DB, app core.AppID, callers, batch int, puid func(n uint64, i int) string) {
	ctx := context.Background()
	b.SetParallelism(max(1, callers/runtime.GOMAXPROCS(0)))
	if callers == 1 {
		serialAdds(b, db, app, puid)
		return
	}
	var next atomic.Uint64
	commits0, written0 := db.CommitStats()
	cpu0 := usageNow()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		items := make([]core.NotificationInput, batch)
		for pb.Next() {
			n := next.Add(1)
			for i := range items {
				items[i] = core.NotificationInput{PUID: puid(n, i), Message: "Fred mentioned you in #beer",
					Action: "https://beerchat.example/r/beer"}
			}
			if _, _, err := db.AddNotifications(ctx, app, items, time.Now(), 0, 100); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	reportItems(b, db, batch*b.N, cpu0, commits0, written0)
}

// inTurn gives one call's items the PUIDs in turn, ten PUIDs a call
// (one when the call has one item).
func inTurn(puids []string) func(n uint64, i int) string {
	return func(n uint64, i int) string { return puids[(n*10+uint64(i%10))%uint64(len(puids))] }
}

// atRandom gives each call's items ten PUIDs drawn at random (a hash of
// the call and the item's place, so that no lock on a shared source
// measures itself).
func atRandom(puids []string) func(n uint64, i int) string {
	return func(n uint64, i int) string {
		x := n*0x9e3779b97f4a7c15 + uint64(i%10)*0xbf58476d1ce4e5b9
		x ^= x >> 31
		x *= 0x94d049bb133111eb
		x ^= x >> 29
		return puids[x%uint64(len(puids))]
	}
}

// BenchmarkAddNotificationBatch100 is one caller sending full batches of
// 100 items over 10 PUIDs, each of whose queues is kept at 100.
func BenchmarkAddNotificationBatch100(b *testing.B) {
	ctx := context.Background()
	db := MustOpenDB(b)
	app, puids := benchGrants(b, db, 1000)
	items := make([]core.NotificationInput, 100)
	commits0, written0 := db.CommitStats()
	cpu0 := usageNow()
	b.ResetTimer()
	for n := 0; b.Loop(); n++ {
		for i := range items {
			items[i] = core.NotificationInput{PUID: puids[(n*10+i%10)%len(puids)], Message: "Fred mentioned you in #beer",
				Action: "https://beerchat.example/r/beer"}
		}
		if _, _, err := db.AddNotifications(ctx, app, items, time.Now(), 0, 100); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	reportItems(b, db, 100*b.N, cpu0, commits0, written0)
}

// BenchmarkAddNotificationBatch100Parallel is several apps' workers
// sending full batches of 100 items at once (about 16 callers), so that
// batches share commits: the batched floor of issue 7 with group commit.
func BenchmarkAddNotificationBatch100Parallel(b *testing.B) {
	db := MustOpenDB(b)
	app, puids := benchGrants(b, db, 1000)
	runAdds(b, db, app, 16, 100, inTurn(puids))
}

// BenchmarkAddNotificationSingleRandom is BenchmarkAddNotificationSingle
// with each item for a PUID drawn at random from 10,000 grants: the
// callers of one commit then seldom write to neighbouring queues, where
// consecutive PUIDs let a commit's items share B-tree pages.
func BenchmarkAddNotificationSingleRandom(b *testing.B) {
	db := MustOpenDB(b)
	app, puids := benchGrants(b, db, 10000)
	runAdds(b, db, app, 64, 1, atRandom(puids))
}

// BenchmarkAddNotificationBatch100ParallelRandom is
// BenchmarkAddNotificationBatch100Parallel with each batch's 10 PUIDs
// drawn at random from 10,000 grants.
func BenchmarkAddNotificationBatch100ParallelRandom(b *testing.B) {
	db := MustOpenDB(b)
	app, puids := benchGrants(b, db, 10000)
	runAdds(b, db, app, 16, 100, atRandom(puids))
}

// BenchmarkAddNotificationSingleFullQueues is BenchmarkAddNotificationSingle
// over 200 PUIDs whose queues are already full (100 items), so that every
// item drops the oldest of its queue: the steady state of presence-bench's
// notify scenario, where no device takes anything.
func BenchmarkAddNotificationSingleFullQueues(b *testing.B) {
	db := MustOpenDB(b)
	app, puids := benchGrants(b, db, 200)
	fillQueues(b, db, app, puids, time.Now())
	runAdds(b, db, app, 64, 1, inTurn(puids))
}

// BenchmarkPurgeNotifications is the hourly purge over 100,000 queued
// items (1,000 full queues) when none is old enough: the cost of the
// scan of the table that it makes for want of an index on created_at.
func BenchmarkPurgeNotifications(b *testing.B) {
	ctx := context.Background()
	db := MustOpenDB(b)
	app, puids := benchGrants(b, db, 1000)
	created := time.Now()
	fillQueues(b, db, app, puids, created)
	b.ResetTimer()
	for b.Loop() {
		if n, err := db.PurgeNotifications(ctx, created.Add(-time.Hour)); err != nil || n != 0 {
			b.Fatal(n, err)
		}
	}
}

// BenchmarkOpenQueued is a start with 1,000,000 queued items (10,000
// full queues): Open loads the queue index with one scan of the table.
func BenchmarkOpenQueued(b *testing.B) {
	ctx := context.Background()
	db := MustOpenDB(b)
	app, puids := benchGrants(b, db, 10000)
	fillQueues(b, db, app, puids, time.Now())
	path := db.Path()
	b.ResetTimer()
	for b.Loop() {
		again, err := sqlite.Open(path)
		if err != nil {
			b.Fatal(err)
		}
		if users, err := again.UsersWithNotifications(ctx); err != nil || len(users) != len(puids) {
			b.Fatal(len(users), err)
		}
		again.Close()
	}
}

// BenchmarkGrantByPUID is the read every notification POST and probe
// starts with, from parallel readers.
func BenchmarkGrantByPUID(b *testing.B) {
	ctx := context.Background()
	db := MustOpenDB(b)
	_, puids := benchGrants(b, db, 1000)
	var next atomic.Uint64
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := next.Add(1)
			if _, err := db.GrantByPUID(ctx, puids[i%uint64(len(puids))]); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// fillQueues fills the queue of each PUID (100 items, created at created).
func fillQueues(b *testing.B, db *sqlite.DB, app core.AppID, puids []string, created time.Time) {
	b.Helper()
	items := make([]core.NotificationInput, 100)
	for _, p := range puids {
		for i := range items {
			items[i] = core.NotificationInput{PUID: p, Message: "Fred mentioned you in #beer", Action: "https://beerchat.example/r/beer"}
		}
		if _, _, err := db.AddNotifications(context.Background(), app, items, created, 0, 100); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAddNotificationSingleLatency is one caller storing one item
// at a time: the round trip of a lone POST's write, commit and sync.
func BenchmarkAddNotificationSingleLatency(b *testing.B) {
	db := MustOpenDB(b)
	app, puids := benchGrants(b, db, 200)
	runAdds(b, db, app, 1, 1, inTurn(puids))
}

// serialAdds is runAdds with one caller, one item per call.
func serialAdds(b *testing.B, db *sqlite.DB, app core.AppID, puid func(n uint64, i int) string) {
	ctx := context.Background()
	commits0, written0 := db.CommitStats()
	cpu0 := usageNow()
	b.ResetTimer()
	for n := uint64(0); b.Loop(); n++ {
		items := []core.NotificationInput{{PUID: puid(n, 0), Message: "Fred mentioned you in #beer", Action: "https://beerchat.example/r/beer"}}
		if _, _, err := db.AddNotifications(ctx, app, items, time.Now(), 0, 100); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	reportItems(b, db, b.N, cpu0, commits0, written0)
}
