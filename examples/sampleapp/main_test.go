package main

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/presence-service/presence/internal/presencetest"
)

// The tour of README.md, as the sample app's users and a device live it:
// the app sends a user through the grant flow and gets the PUID back, shows
// the device's status, and sends a notification whose action leads back
// to it. Once as an XMPP component, once on the JSON channel.
func TestSampleApp(t *testing.T) {
	for _, mode := range []struct {
		name string
		json bool
	}{{"xmpp", false}, {"json", true}} {
		t.Run(mode.name, func(t *testing.T) {
			s := newServer(t)
			appAddr := freeAddr(t)
			id, key := s.registerApp(appAddr)
			s.start()
			a, appURL := startApp(t, s, appAddr, id, key, mode.json)
			waitFor(t, a, "its channel connected", func(sn snapshot) bool { return strings.HasPrefix(sn.Channel, "connected") })

			// A form posted from another site is refused.
			forged, _ := http.NewRequest("POST", appURL+"/notify", strings.NewReader("puid=x&message=spam"))
			forged.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			forged.Header.Set("Origin", "https://evil.example")
			refused, err := http.DefaultClient.Do(forged)
			if err != nil {
				t.Fatal(err)
			}
			refused.Body.Close()
			if refused.StatusCode != http.StatusForbidden {
				t.Fatalf("cross-site POST /notify: %s, want 403", refused.Status)
			}

			// Ann asks the app to see her presence: the app sends her to
			// Presence's grant page, which sends her back with a PUID.
			noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
			resp, err := noFollow.PostForm(appURL+"/connect", url.Values{"name": {"ann"}})
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			grant, _ := url.Parse(resp.Header.Get("Location"))
			if resp.StatusCode != http.StatusSeeOther || grant.Host != s.HTTP || grant.Path != fmt.Sprintf("/%d/grant", id) || grant.Query().Get("id") != "ann" {
				t.Fatalf("connect: %d to %q, want the grant page", resp.StatusCode, grant)
			}
			b := presencetest.NewBrowser(t, "http://"+s.HTTP)
			b.Login("ann@example.com")
			allowed := b.Grant(fmt.Sprint(id), grant.Query().Get("redirect"), "ann", "allow")
			puid, back := allowed.Header.Get("Presence-UID"), allowed.Header.Get("Location")
			if puid == "" || !strings.HasPrefix(back, appURL+"/back?name=ann&presence_uid=") {
				t.Fatalf("grant: PUID %q, back to %q", puid, back)
			}
			if resp, err = noFollow.Get(back); err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			waitFor(t, a, "ann's grant", func(sn snapshot) bool {
				return len(sn.Users) == 1 && sn.Users[0].Name == "ann" && sn.Users[0].PUID == puid
			})

			// Ann's phone says she is online.
			dev := presencetest.Dial(t, "ws://"+s.HTTP+"/presence")
			dev.Send(fmt.Sprintf(`{"type":"connect","assertion":%q,"application_ids":[%d],"device_id":"phone"}`, s.token("ann@example.com"), id))
			var connected struct {
				Result    bool   `json:"result"`
				SessionID string `json:"session_id"`
			}
			dev.Decode(&connected)
			dev.Send(fmt.Sprintf(`{"type":"status","session_id":%q,"status":"online","message":"Writing code"}`, connected.SessionID))
			dev.Expect(`{"result":true}`)
			waitFor(t, a, "ann online", userIs(puid, "online", "Writing code"))

			// The app's form sends her a notification; her phone gets it.
			if resp, err = noFollow.PostForm(appURL+"/notify", url.Values{"puid": {puid}, "message": {"Fred mentioned you"}}); err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			var n struct {
				Type, Message, Action string
			}
			dev.Decode(&n)
			want := "https://" + appAddr + "/opened?uid=" + url.QueryEscape(puid) + "&n="
			if n.Type != "notification" || n.Message != "Fred mentioned you" || !strings.HasPrefix(n.Action, want) {
				t.Fatalf("the device got %+v, want the app's notification with an action at %s", n, want)
			}
			// Accepting it opens the action: the app hears of it (plain
			// http here, where production has TLS in front of the app).
			if resp, err = http.Get(strings.Replace(n.Action, "https://", "http://", 1)); err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			waitFor(t, a, "the notification accepted", func(sn snapshot) bool {
				last := sn.Events[len(sn.Events)-1]
				return last.Kind == "opened" && last.PUID == puid && strings.HasPrefix(last.Text, "ann accepted notification n")
			})
		})
	}
}
