package main

import (
	"context"
	"io"
	"testing"
	"time"
)

// TestSoakSmall runs the soak against a spawned server with tiny numbers:
// 50 devices of 10 users flapping for 3 s (both inside and past the 1 s
// grace, leaving cleanly and abruptly) and 2 apps, one on each channel.
// What an operator reads in the report must hold: no client saw an error,
// both channels got updates and stored notifications, every notification
// stored reached a device and was acked, and once everyone left the
// server was back to its goroutines, files and devices of before.
func TestSoakSmall(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs a real server process")
	}
	o, err := parseSoakFlags([]string{"-spawn", "-src", "../..", "-devices", "50", "-devices-per-user", "5",
		"-apps", "2", "-xmpp-apps", "1", "-duration", "3s", "-sample-every", "1s",
		"-session-min", "200ms", "-session-max", "800ms", "-status-every", "200ms", "-long-offline", "700ms",
		"-notify-rate", "20"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	rep := &report{}
	prog := newProgress(testLog{t})
	defer prog.close()
	res, err := runSoak(ctx, o, rep, prog)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.DeviceErrors) > 0 || len(res.AppErrors) > 0 || res.ClosedByServer > 0 {
		t.Errorf("clients saw errors: devices %s, apps %s, %d sessions ended by the server",
			formatErrs(res.DeviceErrors), formatErrs(res.AppErrors), res.ClosedByServer)
	}
	if res.ReconnectsWithinGrace == 0 || res.ReconnectsAfterGrace == 0 || res.CleanLeaves == 0 || res.AbruptLeaves == 0 {
		t.Errorf("devices did not flap every way: %d reconnects within the grace, %d after, %d clean leaves, %d abrupt",
			res.ReconnectsWithinGrace, res.ReconnectsAfterGrace, res.CleanLeaves, res.AbruptLeaves)
	}
	if ws := res.UpdatesDelivered - res.UpdatesOverXMPP; ws == 0 || res.UpdatesOverXMPP == 0 {
		t.Errorf("status updates: %d to the WebSocket app, %d to the XMPP component; want both > 0", ws, res.UpdatesOverXMPP)
	}
	n := res.Notifications
	if ws := n.Stored - res.ReceiptsOverXMPP; ws == 0 || res.ReceiptsOverXMPP == 0 {
		t.Errorf("notifications stored: %d over the app channel, %d over XMPP; want both > 0", ws, res.ReceiptsOverXMPP)
	}
	if n.Stored != n.Sent || n.StoredUndelivered != 0 || n.StoredUnacked != 0 {
		t.Errorf("notifications: %+v; want every one sent stored, delivered and acked", n)
	}
	if res.After.Devices != 0 || res.After.Goroutines < 0 || res.After.Goroutines > res.Baseline.Goroutines+20 || res.After.FDs > res.Baseline.FDs+10 {
		t.Errorf("server after the soak: %s; before it: %s", res.After, res.Baseline)
	}
	for _, r := range rep.Rows {
		if r.Verdict == "MISSED" {
			t.Errorf("report row %q missed its floor %s", r.Metric, r.Floor)
		}
	}
	if len(res.Readings) < 2 {
		t.Errorf("%d readings during the load, want one after the warm-up and one at its end", len(res.Readings))
	}
}

// testLog sends the tool's progress lines to the test's log.
type testLog struct{ t *testing.T }

func (l testLog) Write(b []byte) (int, error) {
	l.t.Log(string(b))
	return len(b), nil
}
