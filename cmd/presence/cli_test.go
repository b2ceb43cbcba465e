package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// cli runs a presence command in this process as main would: exit is 0
// when run returns nil, else 2.
func cli(t *testing.T, args ...string) (stdout, stderr string, exit int) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := run(context.Background(), args, &out, &errOut)
	if err != nil {
		exit = 2
		errOut.WriteString("presence: " + err.Error() + "\n") // what main adds
	}
	return out.String(), errOut.String(), exit
}

// migrated is a config whose database exists, with one app, 1.
func migrated(t *testing.T) string {
	t.Helper()
	config := writeConfig(t, "")
	if _, _, exit := cli(t, "migrate", "-config", config); exit != 0 {
		t.Fatal("migrate failed")
	}
	if _, said, exit := cli(t, "apps", "add", "--domain", "beer.example", "--name", "Beer", "--email", "dev@beer.example", "-config", config); exit != 0 {
		t.Fatalf("apps add: %s", said)
	}
	return config
}

// The CLI's mistakes are said in the words of its flags, never with the
// layers the error passed through, and help is not a failure.
func TestCLISaysWhatIsWrongPlainly(t *testing.T) {
	config := migrated(t)
	for _, tc := range []struct {
		name     string
		args     []string
		exit     int
		want     string // on stderr, or on stdout when exit is 0
		mustNot  []string
		onStdout bool
	}{
		{"unknown app", []string{"apps", "activate", "999"}, 2, "presence: no app 999\n", []string{"sqlite", "not found"}, false},
		{"unknown app to disable", []string{"apps", "disable", "999"}, 2, "presence: no app 999\n", []string{"sqlite"}, false},
		{"name too long", []string{"apps", "add", "--domain", "a.example", "--name", strings.Repeat("n", 101), "--email", "dev@a.example"}, 2,
			"presence: name must be 1 to 100 characters\n", []string{"errno"}, false},
		{"no email", []string{"apps", "add", "--domain", "a.example", "--name", "A"}, 2,
			"presence: apps add needs --email (the app's domain, its name and its owner's email)\n", nil, false},
		{"nothing", []string{"apps", "add"}, 2,
			"presence: apps add needs --domain, --name, --email", nil, false},
		{"script in the email", []string{"apps", "add", "--domain", "a.example", "--name", "A", "--email", `"><script>alert(1)</script>@x.example`}, 2,
			"email must be one plain address, such as dev@beerchat.example", []string{"errno"}, false},
		{"a name and an address", []string{"apps", "add", "--domain", "a.example", "--name", "A", "--email", "Dev <dev@a.example>"}, 2,
			"email must be one plain address", nil, false},
		{"bad domain", []string{"apps", "add", "--domain", "http://a.example/x", "--name", "A", "--email", "dev@a.example"}, 2,
			"presence: domain: want a host name or host:port, such as beerchat.example\n", []string{"errno"}, false},
		{"id not a number", []string{"apps", "activate", "x"}, 2, `presence: app id "x" is not a number`, nil, false},
		{"unverified app", []string{"apps", "activate", "1"}, 2, "presence: app 1: the domain is not verified yet\n", []string{"conflict"}, false},
		{"apps --help", []string{"apps", "--help"}, 0, "usage: presence apps <list|add|activate|rotate-key|disable>", nil, true},
		{"apps help", []string{"apps", "help"}, 0, "apps add --domain D --name N --email E", nil, true},
		{"presence --help", []string{"--help"}, 0, "usage: presence <command>", nil, true},
		{"apps add -h", []string{"apps", "add", "-h"}, 0, "-email", nil, false},
		{"serve --help", []string{"serve", "--help"}, 0, "-pprof", []string{"-json"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stdout, stderr, exit := cli(t, append(tc.args, "-config", config)...)
			if exit != tc.exit {
				t.Fatalf("exit %d, want %d\nstdout %s\nstderr %s", exit, tc.exit, stdout, stderr)
			}
			said := stderr
			if tc.onStdout {
				said = stdout
			}
			// The database line is what every data command says first.
			said = strings.TrimPrefix(said, "presence: database "+absPath(dbPath(t, config))+"\n")
			if !strings.Contains(said, tc.want) {
				t.Errorf("said %q, want %q", said, tc.want)
			}
			for _, bad := range tc.mustNot {
				if strings.Contains(stdout+stderr, bad) {
					t.Errorf("said %q: it must not say %q", stdout+stderr, bad)
				}
			}
		})
	}
	// The refused email made no app.
	stdout, _, _ := cli(t, "apps", "list", "-config", config)
	if strings.Contains(stdout, "script") || strings.Count(stdout, "\n") != 2 {
		t.Errorf("apps list after the refusals:\n%s\nwant the header and app 1 only", stdout)
	}
}
