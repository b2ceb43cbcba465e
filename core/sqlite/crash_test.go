package sqlite_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/presence-service/presence/core"
	"github.com/presence-service/presence/core/sqlite"
)

// crashEnv names the database a child process of TestCrash writes to.
const crashEnv = "PRESENCE_SQLITE_CRASH_DB"

// TestCrash_ReturnedWritesSurvive kills a writing process with SIGKILL and
// checks that every notification whose AddNotifications had returned is
// in the database when it is opened again: an answer means committed.
func TestCrash_ReturnedWritesSurvive(t *testing.T) {
	if path := os.Getenv(crashEnv); path != "" {
		crashChild(path)
		return
	}
	if testing.Short() {
		t.Skip("starts a child process")
	}
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "presence.db")
	db, err := sqlite.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	app := MustApp(t, db, "dev@example.com")
	for i := range 8 {
		MustGrant(t, db, fmt.Sprint("user", i), app.ID, "U")
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	cmd := exec.Command(os.Args[0], "-test.run=^TestCrash_ReturnedWritesSurvive$")
	cmd.Env = append(os.Environ(), crashEnv+"="+path)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Read acknowledged ids until enough, then kill mid-write.
	var acked []string
	sc := bufio.NewScanner(out)
	for len(acked) < 2000 && sc.Scan() {
		acked = append(acked, sc.Text())
	}
	cmd.Process.Signal(syscall.SIGKILL)
	for sc.Scan() { // what the child printed before it died was acknowledged too
		acked = append(acked, sc.Text())
	}
	cmd.Wait()
	if len(acked) < 2000 {
		t.Fatalf("child acknowledged only %d writes", len(acked))
	}

	db = mustOpenPath(t, path)
	stored := map[string]bool{}
	for i := range 8 {
		p, err := db.PendingNotifications(ctx, fmt.Sprint("user", i), nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range p {
			stored[n.ID] = true
		}
	}
	for _, id := range acked {
		if !stored[id] {
			t.Fatalf("notification %s was acknowledged, then lost in the crash (%d acked, %d stored)", id, len(acked), len(stored))
		}
	}
	t.Logf("%d acknowledged before SIGKILL, %d stored after", len(acked), len(stored))
}

// crashChild writes from 16 goroutines forever, printing each id once
// AddNotifications has returned it, until the parent kills the process.
func crashChild(path string) {
	db, err := sqlite.Open(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	apps, err := db.Apps(context.Background(), "")
	if err != nil || len(apps) != 1 {
		fmt.Fprintln(os.Stderr, "child: apps", apps, err)
		os.Exit(2)
	}
	var mu sync.Mutex // one line per write to stdout
	for w := range 16 {
		go func() {
			for i := 0; ; i++ {
				g, err := db.GrantByPUID(context.Background(), fmt.Sprintf("puid-user%d-%d-U", (w+i)%8, apps[0].ID))
				if err != nil {
					fmt.Fprintln(os.Stderr, err)
					os.Exit(2)
				}
				items := []core.NotificationInput{{PUID: g.PUID, Message: "m"}}
				ns, _, err := db.AddNotifications(context.Background(), apps[0].ID, items, time.Now(), time.Hour, 100000)
				if err != nil {
					fmt.Fprintln(os.Stderr, err)
					os.Exit(2)
				}
				mu.Lock()
				os.Stdout.WriteString(ns[0].ID + "\n")
				mu.Unlock()
			}
		}()
	}
	select {}
}
