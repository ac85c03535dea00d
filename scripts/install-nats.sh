#!/usr/bin/env bash
# Ensures a nats-server >= 2.10 is on PATH.
#
# Debian 12 (bookworm) ships nats-server 2.9.10, which current async-nats cannot
# use (its JetStream account-info reply does not parse). Debian 13 (trixie)
# ships 2.10.x and installs cleanly on bookworm, so on an older Debian/Ubuntu we
# add a trixie source on the same mirror, pinned at priority 50 so that nothing
# else is upgraded from it, and install only nats-server from there.
set -euo pipefail

min_major=2
min_minor=10

version_ok() {
  command -v nats-server >/dev/null 2>&1 || return 1
  local v
  v=$(nats-server --version 2>/dev/null | sed -n 's/.*v\([0-9][0-9.]*\).*/\1/p')
  [ -n "$v" ] || return 1
  local major minor
  major=${v%%.*}
  minor=${v#*.}
  minor=${minor%%.*}
  [ "$major" -gt "$min_major" ] || { [ "$major" -eq "$min_major" ] && [ "$minor" -ge "$min_minor" ]; }
}

if version_ok; then
  echo "nats-server $(nats-server --version | sed 's/^nats-server: //') is recent enough"
  exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
  echo "error: nats-server >= ${min_major}.${min_minor} is required and this is not a Debian/Ubuntu machine;" >&2
  echo "       install it from https://github.com/nats-io/nats-server/releases and put it on PATH" >&2
  exit 1
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

# Install straight away when the configured sources already offer >= 2.10 (Debian 13+, recent Ubuntu).
$SUDO apt-get update -qq
candidate=$(apt-cache policy nats-server 2>/dev/null | sed -n 's/^ *Candidate: *\([0-9][0-9.]*\).*/\1/p')
case "$candidate" in
  2.1[0-9]*|2.[2-9][0-9]*|[3-9].*)
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nats-server
    ;;
  *)
    # Find the mirror that serves bookworm and add trixie beside it, pinned low.
    # Both one-line (`deb URL bookworm main`) and deb822 (`URIs: URL`) sources; comments skipped.
    mirror=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null \
      | grep -vE '^[[:space:]]*#' \
      | grep -oE '^(deb[[:space:]]+(\[[^]]*\][[:space:]]+)?|URIs:[[:space:]]*)https?://[^[:space:]]+/debian/?([[:space:]]|$)' \
      | grep -oE 'https?://[^[:space:]]+' | grep -v security | head -n 1 || true)
    mirror=${mirror:-http://deb.debian.org/debian}
    echo "adding trixie (pinned at priority 50) from ${mirror} to get nats-server >= 2.10"
    echo "deb ${mirror%/} trixie main" | $SUDO tee /etc/apt/sources.list.d/tenant-worker-trixie.list >/dev/null
    printf 'Package: *\nPin: release n=trixie\nPin-Priority: 50\n' \
      | $SUDO tee /etc/apt/preferences.d/tenant-worker-trixie >/dev/null
    $SUDO apt-get update -qq
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -t trixie nats-server
    ;;
esac

# The Debian package starts a system service on :4222; tests start their own
# servers on free ports, so it is left as it is.
if ! version_ok; then
  echo "error: nats-server is still older than ${min_major}.${min_minor} after installing: $(nats-server --version 2>&1)" >&2
  exit 1
fi
echo "installed $(nats-server --version)"
