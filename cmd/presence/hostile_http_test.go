package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// post sends a notification-style POST and returns the status, body and
// headers; auth "" sends no Authorization.
func (h *hostile) post(client *http.Client, path, auth, body string) (int, string, http.Header) {
	h.t.Helper()
	req, _ := http.NewRequest("POST", h.n.http(path), strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := client.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(b)), resp.Header
}

// clientFrom is an HTTP client whose connections come from src.
func clientFrom(src string) *http.Client {
	return &http.Client{Transport: &http.Transport{DialContext: dialerFrom(src).DialContext}}
}

type postCase struct {
	name   string
	app    string // the path's {app_id}; "" is the active app
	auth   string // "key" is the app's own key as a Bearer
	body   string
	status int
	errno  int
	index  int // the item named by "index"; -1: none
}

func postCases(h *hostile) []postCase {
	item := func(uid, msg string) string { return fmt.Sprintf(`{"UID":%q,"message":%q}`, uid, msg) }
	ok := "[" + item(h.puid, "hi") + "]"
	many := make([]string, 101)
	for i := range many {
		many[i] = item(h.puid, "x")
	}
	return []postCase{
		{name: "no Authorization", body: ok, status: 401, errno: 40, index: -1},
		{name: "Basic instead of Bearer", auth: "Basic " + h.key, body: ok, status: 401, errno: 40, index: -1},
		{name: "Bearer and nothing", auth: "Bearer ", body: ok, status: 401, errno: 40, index: -1},
		{name: "a wrong key", auth: "Bearer not-the-key", body: ok, status: 401, errno: 40, index: -1},
		{name: "another app's key", auth: "Bearer " + h.otherKey, body: ok, status: 401, errno: 40, index: -1},
		{name: "the key in lower case", auth: "bearer " + h.key, body: ok, status: 401, errno: 40, index: -1},
		{name: "an unknown app", app: "9999", auth: "key", body: ok, status: 404, errno: 44, index: -1},
		{name: "an app id with a leading zero", app: "0" + fmt.Sprint(h.app), auth: "key", body: ok, status: 404, errno: 44, index: -1},
		{name: "an app id that is not a number", app: "beer", auth: "key", body: ok, status: 404, errno: 44, index: -1},
		{name: "app id 0", app: "0", auth: "key", body: ok, status: 404, errno: 44, index: -1},
		{name: "an app id past int64", app: "99999999999999999999", auth: "key", body: ok, status: 404, errno: 44, index: -1},
		{name: "an app not activated", app: fmt.Sprint(h.inactive), auth: "Bearer " + h.key, body: ok, status: 403, errno: 41, index: -1},
		{name: "a body that is not JSON", auth: "key", body: "hello", status: 400, errno: 3, index: -1},
		{name: "an object, not an array", auth: "key", body: item(h.puid, "x"), status: 400, errno: 3, index: -1},
		{name: "an empty array", auth: "key", body: "[]", status: 400, errno: 3, index: -1},
		{name: "101 items", auth: "key", body: "[" + strings.Join(many, ",") + "]", status: 400, errno: 3, index: -1},
		{name: "an item without UID", auth: "key", body: `[{"message":"x"}]`, status: 400, errno: 3, index: 0},
		{name: "an item without message", auth: "key", body: fmt.Sprintf(`[{"UID":%q}]`, h.puid), status: 400, errno: 3, index: 0},
		{name: "a message of 513 characters", auth: "key", body: "[" + item(h.puid, strings.Repeat("m", 513)) + "]", status: 400, errno: 3, index: 0},
		{name: "a javascript: action", auth: "key", body: fmt.Sprintf(`[{"UID":%q,"message":"x","action":"javascript:alert(1)"}]`, h.puid), status: 400, errno: 3, index: 0},
		{name: "an http: action", auth: "key", body: fmt.Sprintf(`[{"UID":%q,"message":"x","action":"http://beer.example/"}]`, h.puid), status: 400, errno: 3, index: 0},
		{name: "a ttl of 4 s", auth: "key", body: fmt.Sprintf(`[{"UID":%q,"message":"x","ttl":4}]`, h.puid), status: 400, errno: 3, index: 0},
		{name: "a ttl past a day", auth: "key", body: fmt.Sprintf(`[{"UID":%q,"message":"x","ttl":86401}]`, h.puid), status: 400, errno: 3, index: 0},
		{name: "a ttl as a string", auth: "key", body: fmt.Sprintf(`[{"UID":%q,"message":"x","ttl":"60"}]`, h.puid), status: 400, errno: 3, index: 0},
		{name: "a fractional ttl", auth: "key", body: fmt.Sprintf(`[{"UID":%q,"message":"x","ttl":60.5}]`, h.puid), status: 400, errno: 3, index: 0},
		{name: "the second item bad", auth: "key", body: "[" + item(h.puid, "x") + `,{"UID":1,"message":"y"}]`, status: 400, errno: 3, index: 1},
		{name: "an unknown UID", auth: "key", body: "[" + item("0123456789abcdef0123456789abcdef", "x") + "]", status: 404, errno: 44, index: 0},
		{name: "a UID of another app's grant", auth: "key", body: "[" + item(h.otherPUID, "x") + "]", status: 404, errno: 44, index: 0},
		{name: "a body over 512 KiB", auth: "key", body: "[" + item(h.puid, strings.Repeat("x", 600<<10)) + "]", status: 413, errno: 3, index: -1},
	}
}

func TestHostileHTTP(t *testing.T) {
	h := newHostile(t)
	for _, tc := range postCases(h) {
		t.Run("POST "+tc.name, func(t *testing.T) {
			app := tc.app
			if app == "" {
				app = fmt.Sprint(h.app)
			}
			auth := tc.auth
			if auth == "key" {
				auth = "Bearer " + h.key
			}
			status, body, _ := h.post(clientFrom(h.source()), "/"+app+"/notification", auth, tc.body)
			var got struct {
				Result string `json:"result"`
				Errno  int    `json:"errno"`
				Index  *int   `json:"index"`
			}
			if err := json.Unmarshal([]byte(body), &got); err != nil {
				t.Fatalf("%d %q: not JSON", status, body)
			}
			index := -1
			if got.Index != nil {
				index = *got.Index
			}
			if status != tc.status || got.Result != "error" || got.Errno != tc.errno || index != tc.index {
				t.Fatalf("%d %s\nwant %d errno %d index %d", status, body, tc.status, tc.errno, tc.index)
			}
			h.healthyPost(t)
		})
	}
	for _, tc := range pageCases(h) {
		t.Run(tc.method+" "+tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, h.n.http(tc.path), strings.NewReader(tc.form.Encode()))
			if tc.method == "POST" {
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			}
			client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.status {
				t.Fatalf("%d, want %d\n%.300s", resp.StatusCode, tc.status, b)
			}
			if tc.status >= 400 && !strings.Contains(string(b), `href="/static/style.css"`) {
				t.Fatalf("%d without the site's error page:\n%.300s", resp.StatusCode, b)
			}
			if strings.Contains(string(b), "<script>alert") {
				t.Fatal("markup from the request came back unescaped")
			}
			h.healthyPage(t)
			h.healthyPost(t)
		})
	}
}

type pageCase struct {
	name, method, path string
	form               url.Values
	status             int
}

func pageCases(h *hostile) []pageCase {
	app := fmt.Sprint(h.app)
	grant := func(redirect, id string) string {
		return "/" + app + "/grant?" + url.Values{"redirect": {redirect}, "id": {id}}.Encode()
	}
	return []pageCase{
		{name: "an unknown page", method: "GET", path: "/nothing-here", status: 404},
		{name: "a deep unknown path", method: "GET", path: "/a/b/c/d", status: 404},
		{name: "an unknown static file", method: "GET", path: "/static/secret.txt", status: 404},
		{name: "a page of an unknown app", method: "GET", path: "/9999/grant?redirect=https://x.example/&id=a", status: 404},
		{name: "the grant page of an app id with a leading zero", method: "GET", path: "/0" + app + "/grant?redirect=https://beer.example/&id=a", status: 404},
		{name: "a grant that redirects elsewhere", method: "GET", path: grant("https://evil.example/steal", "ann"), status: 400},
		{name: "a grant that redirects to a look-alike domain", method: "GET", path: grant("https://beer.example.evil.example/", "ann"), status: 400},
		{name: "a grant that redirects with user info", method: "GET", path: grant("https://beer.example@evil.example/", "ann"), status: 400},
		{name: "a grant that redirects to javascript:", method: "GET", path: grant("javascript:alert(1)", "ann"), status: 400},
		{name: "a grant without a redirect", method: "GET", path: "/" + app + "/grant?id=ann", status: 400},
		{name: "a grant with an empty userstring", method: "GET", path: grant("https://beer.example/", ""), status: 400},
		{name: "a grant with a userstring of markup and control characters", method: "GET", path: grant("https://beer.example/", "<script>alert(1)</script>\x00"), status: 400},
		{name: "a grant for an app not activated", method: "GET", path: "/" + fmt.Sprint(h.inactive) + "/grant?redirect=https://idle.example/&id=a", status: 303},
		{name: "a grant answer without CSRF", method: "POST", path: "/" + app, form: url.Values{"redirect": {"https://beer.example/"}, "id": {"ann"}, "answer": {"allow"}}, status: 403},
		{name: "a sign-in without CSRF", method: "POST", path: "/login", form: url.Values{"email": {"ann@example.com"}}, status: 403},
		{name: "a revoke without CSRF", method: "POST", path: "/me/grants/" + h.puid + "/revoke", status: 403},
		{name: "an app registration without CSRF", method: "POST", path: "/myapps", form: url.Values{"domain": {"x.example"}, "name": {"X"}}, status: 403},
		{name: "an activation without CSRF", method: "POST", path: "/myapps/" + app + "/activate", status: 403},
		{name: "an admin action without CSRF", method: "POST", path: "/admin/apps/" + app + "/disable", status: 403},
		{name: "a form of 100 KiB", method: "POST", path: "/login", form: url.Values{"email": {strings.Repeat("a", 100<<10)}}, status: 403},
		{name: "an app page that is not a number", method: "GET", path: "/myapps/abc", status: 303},
	}
}
