#!/bin/sh
# Installs what the browser test needs on a fresh Debian machine: Debian's
# chromium and playwright-core (from package-lock.json). Run as root.
set -eu
cd "$(dirname "$0")"
if [ ! -x /usr/bin/chromium ]; then
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq chromium
fi
npm ci --no-audit --no-fund
