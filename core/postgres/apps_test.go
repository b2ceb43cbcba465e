package postgres_test

import (
	"context"
	"errors"
	"reflect"
	"testing"

	"github.com/presence-service/presence/core"
)

func TestApps(t *testing.T) {
	ctx := context.Background()
	db := MustOpenDB(t)

	a := &core.App{Domain: "beer.example", Name: "Beer", Description: "chat", OwnerEmail: "fred@example.com",
		VerificationKey: "k1"}
	if err := db.CreateApp(ctx, a); err != nil {
		t.Fatal(err)
	}
	if a.ID == 0 || a.State != core.AppUnverified || !a.CreatedAt.Equal(t0) {
		t.Fatalf("CreateApp filled in %+v", a)
	}
	b := MustApp(t, db, "other@example.com")
	c := &core.App{ID: 421, Domain: "declared.example", Name: "Declared", OwnerEmail: "fred@example.com", VerificationKey: "k"}
	if err := db.CreateApp(ctx, c); err != nil || c.ID != 421 {
		t.Fatalf("CreateApp with id: %v, id %d", err, c.ID)
	}
	if err := db.CreateApp(ctx, &core.App{ID: 421, Domain: "x", Name: "x", OwnerEmail: "x", VerificationKey: "x"}); !errors.Is(err, core.ErrConflict) {
		t.Fatalf("CreateApp with a taken id = %v, want ErrConflict", err)
	}

	got, err := db.App(ctx, a.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, a) {
		t.Fatalf("App = %+v\nwant %+v", got, a)
	}
	if _, err := db.App(ctx, 9999); !errors.Is(err, core.ErrNotFound) {
		t.Fatalf("App(unknown) = %v, want ErrNotFound", err)
	}

	tests := []struct {
		owner string
		want  []core.AppID
	}{
		{"", []core.AppID{a.ID, b.ID, 421}},
		{"fred@example.com", []core.AppID{a.ID, 421}},
		{"other@example.com", []core.AppID{b.ID}},
		{"nobody@example.com", nil},
	}
	for _, tt := range tests {
		apps, err := db.Apps(ctx, tt.owner)
		if err != nil {
			t.Fatal(err)
		}
		var ids []core.AppID
		for _, x := range apps {
			ids = append(ids, x.ID)
		}
		if !reflect.DeepEqual(ids, tt.want) {
			t.Errorf("Apps(%q) = %v, want %v", tt.owner, ids, tt.want)
		}
	}

	// Update every column but id and created_at.
	u := *a
	u.Domain, u.Name, u.Description, u.OwnerEmail = "new.example", "New", "d2", "new@example.com"
	u.State, u.VerificationKey = core.AppActive, "k2"
	u.KeyHash, u.KeySealed = core.HashKey("secret"), []byte{1, 2, 3}
	u.VerifiedAt, u.ActivatedAt = t0.Add(1), t0.Add(2)
	u.CreatedAt = t0.Add(99) // ignored
	if err := db.UpdateApp(ctx, &u); err != nil {
		t.Fatal(err)
	}
	got, err = db.App(ctx, a.ID)
	if err != nil {
		t.Fatal(err)
	}
	u.CreatedAt = a.CreatedAt
	if !reflect.DeepEqual(got, &u) {
		t.Fatalf("after UpdateApp: %+v\nwant %+v", got, &u)
	}
	if !got.Active() || !got.CheckKey("secret") {
		t.Fatal("updated app is not active with its key")
	}
	if err := db.UpdateApp(ctx, &core.App{ID: 9999}); !errors.Is(err, core.ErrNotFound) {
		t.Fatalf("UpdateApp(unknown) = %v, want ErrNotFound", err)
	}
}
