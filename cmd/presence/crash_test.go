package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/presence-service/presence/internal/presencetest"
)

// TestCrashLosesNoAcknowledgedNotification kills the server with SIGKILL
// while apps POST, restarts it, and checks that every notification that
// got a 200 reaches the device, and none comes again after its ack.
func TestCrashLosesNoAcknowledgedNotification(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and kills a real server process")
	}
	bin := buildBinary(t)
	config := writeConfig(t, "[limits]\nnotifications_per_minute = 1000000\n")
	n := &node{t: t, config: config}
	p := spawn(t, bin, config)

	// Provision through the CLI and the pages, against the running process.
	n.srv = &server{HTTPAddr: p.addr}
	app, key := n.newApp("beer.example")
	ann := presencetest.NewBrowser(t, n.http(""))
	ann.Login("ann@example.com")
	puid := ann.Allow(fmt.Sprint(app), "https://beer.example/", "ann")

	// 8 clients POST until the kill; record every message that got a 200.
	var mu sync.Mutex
	acked := map[string]bool{}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for c := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			client := &http.Client{Timeout: 5 * time.Second}
			for i := 0; ctx.Err() == nil && i < 100000; i++ {
				msg := fmt.Sprintf("c%d-%d", c, i)
				body := fmt.Sprintf(`[{"UID":%q,"message":%q,"ttl":3600}]`, puid, msg)
				req, _ := http.NewRequest("POST", n.http(fmt.Sprintf("/%d/notification", app)), strings.NewReader(body))
				req.Header.Set("Authorization", "Bearer "+key)
				resp, err := client.Do(req)
				if err != nil {
					return // the server is gone
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode == 200 {
					mu.Lock()
					acked[msg] = true
					mu.Unlock()
				}
			}
		}()
	}
	// Kill once a good number are stored (not a timed guess: a count).
	for {
		mu.Lock()
		count := len(acked)
		mu.Unlock()
		if count >= 40 {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	p.cmd.Process.Signal(syscall.SIGKILL)
	p.cmd.Wait()
	cancel()
	wg.Wait()
	if len(acked) > 100 {
		t.Fatalf("%d acknowledged: more than the per-PUID queue of 100 could keep; lower the load", len(acked))
	}

	p = spawn(t, bin, config)
	n.srv = &server{HTTPAddr: p.addr}
	phone, sid := n.device("ann@example.com", "phone", app)
	got := map[string]string{} // message → id
	record := func(frame string) {
		var note struct{ Type, ID, Message string }
		if err := json.Unmarshal([]byte(frame), &note); err != nil || note.Type != "notification" {
			t.Fatalf("got %s, want a notification", frame)
		}
		if _, dup := got[note.Message]; dup {
			t.Fatalf("%s pushed twice in one connect", note.Message)
		}
		got[note.Message] = note.ID
	}
	missing := func() int {
		n := 0
		for msg := range acked {
			if _, ok := got[msg]; !ok {
				n++
			}
		}
		return n
	}
	for missing() > 0 {
		record(phone.Read()) // fails the test if one never comes
	}
	// Some may have been stored without their 200 reaching the client:
	// they were pushed before the answer to this ping.
	phone.Send(`{"type":"ping"}`)
	for frame := phone.Read(); frame != `{"result":true}`; frame = phone.Read() {
		record(frame)
	}
	for msg := range acked {
		if _, ok := got[msg]; !ok {
			t.Errorf("%s got a 200 but was lost in the crash", msg)
		}
	}
	ids := make([]string, 0, len(got))
	for _, id := range got {
		ids = append(ids, id)
	}
	idsJSON, _ := json.Marshal(ids)
	phone.Send(fmt.Sprintf(`{"type":"ack","session_id":%q,"ids":%s}`, sid, idsJSON))
	phone.Expect(`{"result":true}`)

	// After the ack, a new connect gets nothing: the first frame after the
	// connect answer is the answer to our ping.
	phone2, _ := n.device("ann@example.com", "tablet", app)
	phone2.StillOpen()
	t.Logf("%d notifications acknowledged before SIGKILL, all delivered after restart; %d more were stored without their 200 reaching the client", len(acked), len(got)-len(acked))
}
