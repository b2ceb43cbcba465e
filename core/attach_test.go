package core_test

import (
	"context"
	"testing"

	"github.com/presence-service/presence/core"
)

// A channel that authenticated just before a key rotation, and attaches
// just after it (when the rotation found no channel to end), is refused:
// the old key opens nothing. What waited for the app still waits.
func TestAttachAfterRotationIsRefused(t *testing.T) {
	f := newFixture(t, 0)
	ctx := context.Background()
	puid := f.grant("ann@example.com", f.app)
	phone, _ := f.connect("ann@example.com", "phone", f.app)
	f.status(phone, core.Online, "waiting")

	before, err := f.router.App(ctx, f.app)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := f.router.RotateKey(ctx, f.app); err != nil {
		t.Fatal(err)
	}
	_, err = f.router.AttachApp(ctx, f.app, newAppSink(), core.AttachOptions{KeyHash: before.KeyHash})
	if core.ErrnoOf(err) != core.ErrnoBadKey {
		t.Fatalf("attach with the key from before the rotation: %v, want errno 40", err)
	}
	after, _ := f.router.App(ctx, f.app)
	channel := newAppSink()
	if _, err := f.router.AttachApp(ctx, f.app, channel, core.AttachOptions{KeyHash: after.KeyHash}); err != nil {
		t.Fatal(err)
	}
	channel.expect(t, puid, core.Online, "waiting")

	if _, err := f.router.DeactivateApp(ctx, f.app); err != nil {
		t.Fatal(err)
	}
	_, err = f.router.AttachApp(ctx, f.app, newAppSink(), core.AttachOptions{KeyHash: after.KeyHash})
	if core.ErrnoOf(err) != core.ErrnoAppInactive {
		t.Fatalf("attach after deactivation: %v, want errno 41", err)
	}
}
