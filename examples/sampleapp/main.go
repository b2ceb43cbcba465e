package main

import (
	"bytes"
	"context"
	"embed"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"html/template"
	"io"
	"log"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"
)

//go:embed page.html app.js
var files embed.FS

var page = template.Must(template.ParseFS(files, "page.html"))

// config is what the flags say.
type config struct {
	Listen      string // where this app serves its page
	Public      string // this app's own base URL, as browsers reach it
	Presence    string // the Presence server's base URL
	AppID       int64
	Key         string // the API key (from $PRESENCE_API_KEY: not in ps)
	XMPP        string // the XEP-0114 listener; empty with -json
	XMPPDomain  string
	JSONChannel bool
}

func main() {
	var c config
	flag.StringVar(&c.Listen, "listen", "127.0.0.1:8090", "where this app serves its page")
	flag.StringVar(&c.Public, "public", "", "this app's base URL as browsers see it (default http://<listen>)")
	flag.StringVar(&c.Presence, "presence", "http://127.0.0.1:8080", "the Presence server")
	flag.Int64Var(&c.AppID, "app", 1, "this app's id at Presence")
	flag.StringVar(&c.XMPP, "xmpp", "127.0.0.1:5347", "Presence's XMPP component listener")
	flag.StringVar(&c.XMPPDomain, "xmpp-domain", "presence.localhost", "Presence's xmpp.domain")
	flag.BoolVar(&c.JSONChannel, "json", false, "watch presence on the JSON WebSocket channel instead of XMPP")
	flag.Parse()
	c.Key = os.Getenv("PRESENCE_API_KEY")
	if c.Key == "" {
		log.Fatal("set PRESENCE_API_KEY to the key that `presence apps activate` printed")
	}
	if c.Public == "" {
		c.Public = "http://" + c.Listen
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	a := newApp(c)
	go a.watch(ctx)
	srv := &http.Server{Addr: c.Listen, Handler: a.routes(), ReadHeaderTimeout: 10 * time.Second}
	go func() { <-ctx.Done(); srv.Close() }()
	log.Printf("sample app on %s (app %d at %s)", c.Public, c.AppID, c.Presence)
	if err := srv.ListenAndServe(); !errors.Is(err, http.ErrServerClosed) {
		log.Fatal(err)
	}
}

// user is one person who granted this app their presence.
type user struct {
	PUID    string    `json:"puid"`
	Name    string    `json:"name"`
	Status  string    `json:"status"`
	Message string    `json:"message"`
	At      time.Time `json:"at"`
}

// event is one line of the page's log.
type event struct {
	At   time.Time `json:"at"`
	Kind string    `json:"kind"` // status, notification, opened, channel
	PUID string    `json:"puid,omitempty"`
	Text string    `json:"text"`
}

type app struct {
	cfg  config
	http *http.Client

	mu      sync.Mutex // guards: users, order, events, channel, changed
	users   map[string]*user
	order   []string // PUIDs, in the order they arrived
	events  []event  // the newest last, at most maxEvents
	channel string   // the presence channel's state, for the page
	changed chan struct{}
}

const maxEvents = 200

func newApp(c config) *app {
	return &app{cfg: c, http: &http.Client{Timeout: 10 * time.Second},
		users: map[string]*user{}, channel: "connecting", changed: make(chan struct{})}
}

// userLocked returns the user of puid, adding one we have not seen (a
// grant made before this process started).
func (a *app) userLocked(puid string) *user {
	u := a.users[puid]
	if u == nil {
		u = &user{PUID: puid, Name: "user " + puid[:min(6, len(puid))], Status: "offline"}
		a.users[puid] = u
		a.order = append(a.order, puid)
	}
	return u
}

// record adds an event and wakes the pages that watch.
func (a *app) recordLocked(kind, puid, text string) {
	a.events = append(a.events, event{At: time.Now().UTC(), Kind: kind, PUID: puid, Text: text})
	if len(a.events) > maxEvents {
		a.events = a.events[len(a.events)-maxEvents:]
	}
	close(a.changed)
	a.changed = make(chan struct{})
}

// setStatus is what both presence channels call for each update.
func (a *app) setStatus(puid, status, message string, at time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	u := a.userLocked(puid)
	u.Status, u.Message, u.At = status, message, at
	text := u.Name + " is " + status
	if message != "" {
		text += ": " + message
	}
	a.recordLocked("status", puid, text)
}

func (a *app) setChannel(state string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.channel != state {
		a.channel = state
		a.recordLocked("channel", "", "presence channel "+state)
	}
}

type snapshot struct {
	Channel string  `json:"channel"`
	Users   []user  `json:"users"`
	Events  []event `json:"events"`
}

func (a *app) snapshot() (snapshot, <-chan struct{}) {
	a.mu.Lock()
	defer a.mu.Unlock()
	s := snapshot{Channel: a.channel, Events: append([]event(nil), a.events...)}
	for _, p := range a.order {
		s.Users = append(s.Users, *a.users[p])
	}
	return s, a.changed
}

// --- the page ---

func (a *app) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", a.home)
	mux.Handle("GET /app.js", http.FileServerFS(files))
	mux.HandleFunc("GET /state", a.state)
	mux.HandleFunc("GET /events", a.stream)
	mux.Handle("POST /connect", a.sameOrigin(a.connect))
	mux.HandleFunc("GET /back", a.back)
	mux.Handle("POST /notify", a.sameOrigin(a.notify))
	mux.HandleFunc("GET /opened", a.opened)
	return mux
}

// sameOrigin refuses a form posted from another site (browsers send
// Origin on every POST): a page elsewhere must not send notifications
// through this app. A real app would also check who is signed in.
func (a *app) sameOrigin(h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if o := r.Header.Get("Origin"); o != "" && o != a.cfg.Public {
			http.Error(w, "cross-site form refused", http.StatusForbidden)
			return
		}
		h(w, r)
	})
}

func (a *app) home(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'")
	page.Execute(w, map[string]any{"AppID": a.cfg.AppID, "Flash": r.URL.Query().Get("flash")})
}

func (a *app) state(w http.ResponseWriter, r *http.Request) {
	s, _ := a.snapshot()
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(s)
}

// stream sends a snapshot now and after every change (Server-Sent Events),
// so the page is live without polling.
func (a *app) stream(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	rc := http.NewResponseController(w)
	for {
		s, changed := a.snapshot()
		b, _ := json.Marshal(s)
		fmt.Fprintf(w, "data: %s\n\n", b)
		if rc.Flush() != nil {
			return
		}
		select {
		case <-changed:
		case <-r.Context().Done():
			return
		}
	}
}

// connect sends the user to Presence's grant page; Presence sends them
// back to /back with presence_uid (PROTOCOL §6).
func (a *app) connect(w http.ResponseWriter, r *http.Request) {
	name := strings.TrimSpace(r.PostFormValue("name"))
	if name == "" || len(name) > 64 {
		http.Redirect(w, r, "/?flash="+url.QueryEscape("Type a name of 1 to 64 characters."), http.StatusSeeOther)
		return
	}
	back := a.cfg.Public + "/back?name=" + url.QueryEscape(name)
	grant := fmt.Sprintf("%s/%d/grant?redirect=%s&id=%s", a.cfg.Presence, a.cfg.AppID, url.QueryEscape(back), url.QueryEscape(name))
	http.Redirect(w, r, grant, http.StatusSeeOther)
}

func (a *app) back(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	puid, name := q.Get("presence_uid"), q.Get("name")
	if puid == "" {
		http.Redirect(w, r, "/?flash="+url.QueryEscape("No presence for "+name+": "+q.Get("presence_error")), http.StatusSeeOther)
		return
	}
	a.mu.Lock()
	u := a.userLocked(puid)
	u.Name = name
	a.recordLocked("grant", puid, name+" shares their presence with us")
	a.mu.Unlock()
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

// notify sends one live notification with POST /{app}/notification
// (PROTOCOL §4). Its action points back here: a device that accepts it
// opens /opened, and the log says so.
func (a *app) notify(w http.ResponseWriter, r *http.Request) {
	puid, msg := r.PostFormValue("puid"), strings.TrimSpace(r.PostFormValue("message"))
	n := fmt.Sprintf("n%d", time.Now().UnixNano())
	// An action must be https (PROTOCOL §4): in production this app is
	// behind TLS at the same host.
	action := "https://" + strings.TrimPrefix(strings.TrimPrefix(a.cfg.Public, "http://"), "https://") +
		"/opened?uid=" + url.QueryEscape(puid) + "&n=" + n
	body, _ := json.Marshal([]map[string]any{{"UID": puid, "message": msg, "action": action, "ttl": 300}})
	req, _ := http.NewRequestWithContext(r.Context(), "POST", fmt.Sprintf("%s/%d/notification", a.cfg.Presence, a.cfg.AppID), bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+a.cfg.Key)
	req.Header.Set("Content-Type", "application/json")
	text := ""
	resp, err := a.http.Do(req)
	if err != nil {
		text = "not sent: " + err.Error()
	} else {
		answer, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
		text = fmt.Sprintf("sent %q: %s %s", msg, resp.Status, bytes.TrimSpace(answer))
	}
	a.mu.Lock()
	a.recordLocked("notification", puid, text)
	a.mu.Unlock()
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

func (a *app) opened(w http.ResponseWriter, r *http.Request) {
	puid := r.URL.Query().Get("uid")
	a.mu.Lock()
	name := "someone"
	if u := a.users[puid]; u != nil {
		name = u.Name
	}
	a.recordLocked("opened", puid, name+" accepted notification "+r.URL.Query().Get("n"))
	a.mu.Unlock()
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	fmt.Fprintf(w, "<!doctype html><title>Sample app</title><h1>Hello %s</h1><p>You accepted the notification.</p>", template.HTMLEscapeString(name))
}
