#!/bin/sh
# Installs the XEP-0114 interop peers that xmpp/interop_test.go drives when
# PRESENCE_INTEROP is set: Debian's python3-slixmpp (ComponentXMPP) and
# npm's @xmpp/component (xmpp.js, pinned by package-lock.json).
# Idempotent: already-installed peers are left alone.
set -eu
cd "$(dirname "$0")"

if ! /usr/bin/python3 -c 'import slixmpp' 2>/dev/null; then
	SUDO=""
	if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
	$SUDO apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq python3-slixmpp
fi
/usr/bin/python3 -c 'import slixmpp; print("slixmpp", slixmpp.__version__)'

if [ ! -d node/node_modules/@xmpp/component ] || [ node/package-lock.json -nt node/node_modules/.package-lock.json ]; then
	(cd node && npm ci --no-audit --no-fund)
fi
node -e 'console.log("@xmpp/component", require("./node/node_modules/@xmpp/component/package.json").version)'
