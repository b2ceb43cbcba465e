package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// appCred is a provisioned, active app.
type appCred struct {
	ID     int    `json:"app_id"`
	Key    string `json:"-"`
	Domain string `json:"domain"`
}

// userCred is a user with a device assertion and a PUID per app.
type userCred struct {
	Email     string
	Assertion string
	PUIDs     map[int]string
}

// cli runs the presence binary's operator commands (§9) with --json.
type cli struct {
	bin, config string
}

func (c cli) run(ctx context.Context, out any, args ...string) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.bin, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	b, err := cmd.Output()
	if err != nil {
		return fmt.Errorf("presence %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return decodeLastJSON(b, out)
}

// decodeLastJSON decodes the last line of b that holds a JSON object: log
// lines may come before it.
func decodeLastJSON(b []byte, out any) error {
	lines := bytes.Split(bytes.TrimSpace(b), []byte("\n"))
	for i := len(lines) - 1; i >= 0; i-- {
		if l := bytes.TrimSpace(lines[i]); bytes.HasPrefix(l, []byte("{")) {
			return json.Unmarshal(l, out)
		}
	}
	return fmt.Errorf("no JSON object in output %q", b)
}

func (c cli) addApp(ctx context.Context, domain, name, email string) (appCred, error) {
	var added struct {
		ID int `json:"app_id"`
	}
	if err := c.run(ctx, &added, "apps", "add", "-config", c.config, "--domain", domain,
		"--name", name, "--email", email, "--verified", "--json"); err != nil {
		return appCred{}, err
	}
	var act struct {
		ID  int    `json:"app_id"`
		Key string `json:"api_key"`
	}
	if err := c.run(ctx, &act, "apps", "activate", "-config", c.config, "--json", strconv.Itoa(added.ID)); err != nil {
		return appCred{}, err
	}
	if act.Key == "" {
		return appCred{}, fmt.Errorf("apps activate %d: no api_key", added.ID)
	}
	return appCred{ID: added.ID, Key: act.Key, Domain: domain}, nil
}

func (c cli) token(ctx context.Context, email string) (string, error) {
	var tok struct {
		Assertion string `json:"assertion"`
	}
	if err := c.run(ctx, &tok, "token", "-config", c.config, "--email", email, "--json"); err != nil {
		return "", err
	}
	return tok.Assertion, nil
}

var (
	inputTag  = regexp.MustCompile(`(?is)<input[^>]*name="csrf_token"[^>]*>`)
	valueAttr = regexp.MustCompile(`(?is)value="([^"]*)"`)
)

// parseCSRF finds the hidden csrf_token input of a page, whatever the order
// of its attributes.
func parseCSRF(page string) (string, error) {
	tag := inputTag.FindString(page)
	if tag == "" {
		return "", fmt.Errorf("no csrf_token input in page")
	}
	m := valueAttr.FindStringSubmatch(tag)
	if m == nil || m[1] == "" {
		return "", fmt.Errorf("csrf_token input without value")
	}
	return html.UnescapeString(m[1]), nil
}

// web is one signed-in browser on the server's pages.
type web struct {
	base string
	c    *http.Client
}

func signIn(ctx context.Context, base, email string) (*web, error) {
	jar, _ := cookiejar.New(nil)
	w := &web{base: base, c: &http.Client{
		Jar:           jar,
		Timeout:       15 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
	token, err := w.csrf(ctx, "/login?next=/me")
	if err != nil {
		return nil, fmt.Errorf("login page: %w", err)
	}
	resp, err := w.post(ctx, "/login", url.Values{"email": {email}, "next": {"/me"}, "csrf_token": {token}})
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusSeeOther && resp.StatusCode != http.StatusFound && resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("POST /login: http %d", resp.StatusCode)
	}
	return w, nil
}

func (w *web) csrf(ctx context.Context, path string) (string, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, w.base+path, nil)
	resp, err := w.c.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET %s: http %d", path, resp.StatusCode)
	}
	return parseCSRF(string(b))
}

func (w *web) post(ctx context.Context, path string, form url.Values) (*http.Response, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, w.base+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := w.c.Do(req)
	if err != nil {
		return nil, err
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	return resp, nil
}

// grant allows app for this user (§6) and returns the PUID.
func (w *web) grant(ctx context.Context, app appCred, userstring string) (string, error) {
	redirect := "https://" + app.Domain + "/cb"
	q := url.Values{"redirect": {redirect}, "id": {userstring}}
	token, err := w.csrf(ctx, fmt.Sprintf("/%d/grant?%s", app.ID, q.Encode()))
	if err != nil {
		return "", fmt.Errorf("grant page: %w", err)
	}
	resp, err := w.post(ctx, fmt.Sprintf("/%d", app.ID), url.Values{
		"redirect": {redirect}, "id": {userstring}, "answer": {"allow"}, "csrf_token": {token},
	})
	if err != nil {
		return "", err
	}
	if puid := resp.Header.Get("Presence-UID"); puid != "" {
		return puid, nil
	}
	if loc, err := url.Parse(resp.Header.Get("Location")); err == nil {
		if puid := loc.Query().Get("presence_uid"); puid != "" {
			return puid, nil
		}
	}
	return "", fmt.Errorf("POST /%d: http %d without Presence-UID", app.ID, resp.StatusCode)
}

// provision creates nApps receiving apps plus the slow app through the CLI,
// and nUsers device users and nNotify notification users, each with an
// assertion and a grant to every app through the web pages.
func provision(ctx context.Context, c cli, addr string, nApps, nUsers, nNotify, perIP int, prog *progress) (*target, error) {
	total := nUsers + nNotify
	t := &target{name: "presence", side: sideMeasured, addr: addr, d: newSourceDialer(addr, perIP)}
	stamp := time.Now().Unix()
	for i := range nApps + 1 {
		domain := fmt.Sprintf("app%d-%d.bench.example", i, stamp)
		a, err := c.addApp(ctx, domain, fmt.Sprintf("bench app %d", i), "dev@bench.example")
		if err != nil {
			return nil, err
		}
		if i < nApps {
			t.apps = append(t.apps, a)
		} else {
			t.slow = a
		}
	}
	all := append(append([]appCred{}, t.apps...), t.slow)
	if _, err := signIn(ctx, "http://"+addr, "probe@bench.example"); err != nil {
		t.grantErr = fmt.Errorf("web sign-in does not work (%w): users get assertions but no grants", err)
		prog.logf("%v", t.grantErr)
		all = nil
	}
	t.users = make([]userCred, total)
	var done atomic.Int64
	prog.set("provision", func() string {
		return fmt.Sprintf("%d/%d users with assertion and %d grants each", done.Load(), total, len(all))
	})
	jobs := make(chan int)
	errc := make(chan error, 1)
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				u, err := provisionUser(ctx, c, "http://"+addr, fmt.Sprintf("u%d-%d@bench.example", i, stamp), all)
				if err != nil {
					select {
					case errc <- err:
					default:
					}
					continue
				}
				t.users[i] = u
				done.Add(1)
			}
		}()
	}
	for i := range total {
		select {
		case jobs <- i:
		case err := <-errc:
			close(jobs)
			wg.Wait()
			return nil, fmt.Errorf("provisioning user %d: %w", i, err)
		}
	}
	close(jobs)
	wg.Wait()
	select {
	case err := <-errc:
		return nil, fmt.Errorf("provisioning: %w", err)
	default:
	}
	t.users, t.notifyUsers = t.users[:nUsers], t.users[nUsers:]
	return t, nil
}

func provisionUser(ctx context.Context, c cli, base, email string, apps []appCred) (userCred, error) {
	u := userCred{Email: email, PUIDs: map[int]string{}}
	var err error
	if u.Assertion, err = c.token(ctx, email); err != nil {
		return u, err
	}
	if len(apps) == 0 {
		return u, nil
	}
	w, err := signIn(ctx, base, email)
	if err != nil {
		return u, err
	}
	for _, a := range apps {
		if u.PUIDs[a.ID], err = w.grant(ctx, a, strings.Split(email, "@")[0]); err != nil {
			return u, err
		}
	}
	return u, nil
}
