#!/usr/bin/env bash
# The whole test suite, on a fresh machine. It installs the real peers the
# tests drive (Debian's python3-slixmpp, chromium and postgresql, npm's
# @xmpp/component and playwright-core), checks formatting and vet, runs
# presence.js's unit tests with Node's test runner, runs every Go test with
# the race detector (interop, browser and cluster tests included: with
# PRESENCE_INTEROP=1, PRESENCE_BROWSER=1 and PRESENCE_CLUSTER=1 a missing
# peer fails, never skips), then gives each fuzz target a short run. The
# cluster tests start their own throwaway PostgreSQL (internal/pgtest) and
# embedded NATS servers.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n== %s\n' "$*"; }

step "installing test peers"
have_postgres() { compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null; }
if [ "$(id -u)" = 0 ] && { [ ! -x /usr/bin/chromium ] || ! /usr/bin/python3 -c 'import slixmpp' 2>/dev/null || ! have_postgres; }; then
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends chromium python3-slixmpp postgresql >/dev/null
fi
xmpp/interop/install.sh
admin/browsertest/install.sh

step "gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go'))
if [ -n "$unformatted" ]; then
	echo "gofmt would change:"; echo "$unformatted"; exit 1
fi

step "go vet"
go vet ./...

step "node --test (presence.js)"
node --test admin/jstest/

step "go test -race (interop, browser and cluster tests on)"
results=$(mktemp)
trap 'rm -f "$results"' EXIT
set +e
PRESENCE_INTEROP=1 PRESENCE_BROWSER=1 PRESENCE_CLUSTER=1 go test -race -count=1 -timeout 30m -json ./... > "$results"
tested=$?
# Package lines, the output of any failing test, and "N passed, N failed".
summary=$(/usr/bin/python3 scripts/gotest-summary.py < "$results")
summarized=$?
set -e
echo "$summary"
if [ "$tested" != 0 ] || [ "$summarized" != 0 ]; then
	echo "go test failed (exit $tested)"; exit 1
fi

step "fuzzing each parser briefly"
# Go 1.26's fuzz coordinator can fail a target with a bare "context
# deadline exceeded" at the -fuzztime boundary, having found nothing
# (golang/go#75804, fixed in Go 1.27; seen here on xmpp's FuzzScanner under
# load). Such a run is run again once; a run that wrote a failing input, or
# failed in any other way, fails the suite at once.
fuzz() {
	local out
	if out=$(go test -run '^$' -fuzz "^$2\$" -fuzztime "${FUZZTIME:-10s}" "$1" 2>&1); then
		printf '%s\n' "$out" | tail -n 2
		return 0
	fi
	printf '%s\n' "$out"
	if grep -q 'context deadline exceeded' <<<"$out" && ! grep -q 'Failing input written' <<<"$out"; then
		echo "fuzz: $2: the -fuzztime deadline race of Go 1.26 (golang/go#75804), nothing found; once more"
		go test -run '^$' -fuzz "^$2\$" -fuzztime "${FUZZTIME:-10s}" "$1"
		return
	fi
	return 1
}
# `go test -list` prints a package's matching names, then its "ok" line.
go test -list '^Fuzz' ./... | awk '/^Fuzz/ {names = names " " $1; next} /^ok/ {if (names != "") print $2 names; names = ""}' |
	while read -r pkg targets; do
		for target in $targets; do
			fuzz "$pkg" "$target"
		done
	done
echo
echo "$summary" | tail -n 1
