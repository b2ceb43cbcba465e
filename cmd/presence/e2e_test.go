package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	presence "github.com/presence-service/presence"
	"github.com/presence-service/presence/internal/presencetest"
)

// node is the whole server, started as `presence serve` starts it, on
// loopback ports the kernel picks, with its data in a temp folder.
type node struct {
	t      *testing.T
	config string // the presence.toml path the CLI is given too
	srv    *server
}

func writeConfig(t *testing.T, extra string) string {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "presence.toml")
	text := fmt.Sprintf(`
[server]
listen = "127.0.0.1:0"
[database]
path = %q
[xmpp]
listen = "127.0.0.1:0"
[device]
disconnect_grace = "300ms"
%s`, filepath.Join(dir, "data", "presence.db"), extra)
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func startNode(t *testing.T, config string) *node {
	t.Helper()
	cfg, err := presence.Load(config)
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	s, err := startServer(t.Context(), cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	n := &node{t: t, config: config, srv: s}
	t.Cleanup(func() { n.stop() })
	return n
}

func (n *node) stop() {
	if n.srv == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := n.srv.Shutdown(ctx); err != nil {
		n.t.Errorf("shutdown: %v", err)
	}
	n.srv = nil
}

// cli runs a presence command against the node's config and decodes its
// --json answer.
func (n *node) cli(v any, args ...string) {
	n.t.Helper()
	var out, errOut bytes.Buffer
	args = append(args, "-config", n.config, "--json")
	if err := run(context.Background(), args, &out, &errOut); err != nil {
		n.t.Fatalf("presence %s: %v\n%s", strings.Join(args, " "), err, errOut.String())
	}
	if err := json.Unmarshal(out.Bytes(), v); err != nil {
		n.t.Fatalf("presence %s printed %q: %v", strings.Join(args, " "), out.String(), err)
	}
}

func (n *node) ws(path string) string   { return "ws://" + n.srv.HTTPAddr + path }
func (n *node) http(path string) string { return "http://" + n.srv.HTTPAddr + path }

// newApp registers and activates an app through the CLI code path.
func (n *node) newApp(domain string) (id int64, key string) {
	var added struct {
		AppID           int64  `json:"app_id"`
		VerificationKey string `json:"verification_key"`
	}
	n.cli(&added, "apps", "add", "--domain", domain, "--name", "Beer chat", "--email", "dev@"+domain, "--verified")
	if added.AppID == 0 || len(added.VerificationKey) != 1024 {
		n.t.Fatalf("apps add: %+v", added)
	}
	var activated struct {
		AppID  int64  `json:"app_id"`
		APIKey string `json:"api_key"`
	}
	n.cli(&activated, "apps", "activate", fmt.Sprint(added.AppID))
	if activated.AppID != added.AppID || len(activated.APIKey) != 1024 {
		n.t.Fatalf("apps activate: %+v", activated)
	}
	return added.AppID, activated.APIKey
}

func (n *node) token(email string) string {
	var tok struct {
		Assertion string `json:"assertion"`
	}
	n.cli(&tok, "token", "--email", email)
	return tok.Assertion
}

// device connects a device and returns its socket and session id.
func (n *node) device(email, deviceID string, apps ...int64) (*presencetest.WS, string) {
	n.t.Helper()
	c := presencetest.Dial(n.t, n.ws("/presence"))
	ids, _ := json.Marshal(apps)
	c.Send(fmt.Sprintf(`{"type":"connect","assertion":%q,"application_ids":%s,"device_id":%q}`, n.token(email), ids, deviceID))
	var answer struct {
		Result  bool    `json:"result"`
		Session string  `json:"session_id"`
		Ignored []int64 `json:"ignored_application_ids"`
	}
	c.Decode(&answer)
	if !answer.Result || answer.Session == "" || len(answer.Ignored) != 0 {
		n.t.Fatalf("connect %s/%s: %+v", email, deviceID, answer)
	}
	return c, answer.Session
}

func status(c *presencetest.WS, sid, st, msg string, apps ...int64) {
	frame := fmt.Sprintf(`{"type":"status","session_id":%q,"status":%q`, sid, st)
	if msg != "" {
		frame += fmt.Sprintf(`,"message":%q`, msg)
	}
	if apps != nil {
		ids, _ := json.Marshal(apps)
		frame += `,"application_ids":` + string(ids)
	}
	c.Send(frame + "}")
	c.Expect(`{"result":true}`)
}

// TestEndToEnd walks the whole product as its users would: an operator
// adds an app with the CLI, users grant it on the web pages, devices
// connect, and the app channel sees every transition of PROTOCOL §2–§3.
func TestEndToEnd(t *testing.T) {
	n := startNode(t, writeConfig(t, "[apps]\nstatus_queue_ttl = \"2s\"\n"))
	beer, beerKey := n.newApp("beer.example")
	game, gameKey := n.newApp("game.example")
	beerID, gameID := fmt.Sprint(beer), fmt.Sprint(game)

	ann := presencetest.NewBrowser(t, n.http(""))
	ann.Login("ann@example.com")
	annBeer := ann.Allow(beerID, "https://beer.example/back?x=1", "ann")
	annGame := ann.Allow(gameID, "https://play.game.example/cb", "annie")
	if again := ann.Allow(beerID, "https://beer.example/back", "ann"); again != annBeer {
		t.Fatalf("granting again gave a new PUID %s, want %s", again, annBeer)
	}
	bob := presencetest.NewBrowser(t, n.http(""))
	bob.Login("bob@example.com")
	bobBeer := bob.Allow(beerID, "https://beer.example/", "bob")
	if denied := bob.Grant(gameID, "https://game.example/cb", "bob", "deny"); denied.StatusCode != 303 ||
		denied.Header.Get("Location") != "https://game.example/cb?presence_error=access_denied" {
		t.Fatalf("deny: %d %q", denied.StatusCode, denied.Header.Get("Location"))
	}

	beerFeed := presencetest.OpenFeed(t, n.ws("/"+beerID), beerKey)
	gameFeed := presencetest.OpenFeed(t, n.ws("/"+gameID), gameKey)

	phone, phoneSID := n.device("ann@example.com", "phone", beer, game)
	laptop, laptopSID := n.device("ann@example.com", "laptop", beer)
	bobPhone, bobSID := n.device("bob@example.com", "phone", beer)

	// Aggregation: phone online + laptop offline = online.
	status(phone, phoneSID, "online", "on the bus")
	beerFeed.Expect(annBeer, "online", "on the bus")
	gameFeed.Expect(annGame, "online", "on the bus")
	status(laptop, laptopSID, "offline", "")
	status(bobPhone, bobSID, "unavailable", "")
	beerFeed.Expect(bobBeer, "unavailable", "") // ann's laptop changed nothing

	// Per-call application_ids: only the game is told.
	status(phone, phoneSID, "unavailable", "in a meeting", game)
	gameFeed.Expect(annGame, "unavailable", "in a meeting")
	status(laptop, laptopSID, "online", "at my desk")
	beerFeed.Expect(annBeer, "online", "at my desk") // the next beer update: the narrowed one never reached it

	// Visibility: the game is taken out of the phone's set and sees offline.
	phone.Send(fmt.Sprintf(`{"type":"visibility","session_id":%q,"application_ids":[%d]}`, phoneSID, beer))
	phone.Expect(`{"result":true}`)
	gameFeed.Expect(annGame, "offline", "")

	// Disconnect grace: a quick reconnect of the laptop sends nothing...
	laptop.Conn.Close()
	laptop, laptopSID = n.device("ann@example.com", "laptop", beer)
	status(laptop, laptopSID, "online", "at my desk")
	status(bobPhone, bobSID, "online", "marker")
	beerFeed.Expect(bobBeer, "online", "marker")
	// ...a real drop of bob's phone sends offline after the grace.
	dropped := time.Now()
	bobPhone.Conn.Close()
	beerFeed.Expect(bobBeer, "offline", "")
	if waited := time.Since(dropped); waited < 300*time.Millisecond {
		t.Fatalf("offline after %v, before the 300ms grace", waited)
	}

	// Replacement: a second connect of ann's phone ends the first with -2.
	phone2, phone2SID := n.device("ann@example.com", "phone", beer)
	phone.Expect(`{"result":false,"errno":-2,"reason":"replaced by a newer connection of the same user and device"}`)
	phone.ExpectClosed()
	status(phone2, phone2SID, "offline", "")
	status(laptop, laptopSID, "unavailable", "")
	beerFeed.Expect(annBeer, "unavailable", "")

	// The queue: updates made while the app is away arrive on connect,
	// one per PUID, none older than apps.status_queue_ttl (2s here).
	beerFeed.Conn.Close()
	bobPhone, bobSID = n.device("bob@example.com", "phone", beer)
	status(bobPhone, bobSID, "online", "stale soon")
	time.Sleep(2100 * time.Millisecond) // bob's update is now older than the TTL
	status(laptop, laptopSID, "online", "one")
	status(laptop, laptopSID, "unavailable", "two")
	status(laptop, laptopSID, "online", "three")
	beerFeed = presencetest.OpenFeed(t, n.ws("/"+beerID), beerKey)
	beerFeed.Expect(annBeer, "online", "three")
	status(bobPhone, bobSID, "unavailable", "live again")
	beerFeed.Expect(bobBeer, "unavailable", "live again") // bob's stale update was dropped
}

// TestRestartKeepsAppsGrantsAndWaitingUpdates stops and starts the server
// on the same data folder.
func TestRestartKeepsAppsGrantsAndWaitingUpdates(t *testing.T) {
	config := writeConfig(t, "")
	n := startNode(t, config)
	beer, key := n.newApp("beer.example")
	beerID := fmt.Sprint(beer)
	ann := presencetest.NewBrowser(t, n.http(""))
	ann.Login("ann@example.com")
	puid := ann.Allow(beerID, "https://beer.example/", "ann")
	phone, sid := n.device("ann@example.com", "phone", beer)
	status(phone, sid, "online", "before the restart") // no app channel: it waits

	n.stop()
	phone.Expect(`{"result":false,"errno":-4,"reason":"server shutting down: connect again"}`)
	n = startNode(t, config)

	feed := presencetest.OpenFeed(t, n.ws("/"+beerID), key) // the key survived
	feed.Expect(puid, "online", "before the restart")       // so did the waiting update
	phone, sid = n.device("ann@example.com", "phone", beer) // and the grant: beer is not ignored
	status(phone, sid, "unavailable", "after")
	feed.Expect(puid, "unavailable", "after")
}
