#!/usr/bin/env bash
# Install the Debian 12 packages cworker needs to build, test and demo — only those
# that are missing. Non-interactive; safe to run repeatedly (CI runs it as root with no
# stdin on a fresh machine).
set -euo pipefail

PACKAGES=(
  build-essential pkg-config
  librabbitmq-dev libpq-dev libjson-c-dev libarchive-dev zlib1g-dev libcmocka-dev libssl-dev uuid-dev
  rabbitmq-server postgresql
  python3-celery python3-sqlalchemy python3-psycopg2 python3-pytest
  clang-format valgrind docker-compose libmicrohttpd-dev curl
  libcurl4-openssl-dev python3-boto3 xxd
  # headless browser of tests/integration/test_dashboard.py (runs as root with --no-sandbox),
  # and the websocket client its tests drive it with over the DevTools protocol (tests/py/cdp.py)
  chromium python3-websocket
)
# Node runs s3rver, the S3 stand-in of tests/integration/test_s3_storage.py (tests/env/
# s3rver.sh installs it with npm). Asked for only when missing: a Node from elsewhere
# bundles its own npm, and Debian's npm package would conflict with it.
command -v node >/dev/null 2>&1 || PACKAGES+=(nodejs)
command -v npm >/dev/null 2>&1 || PACKAGES+=(npm)

missing=()
for p in "${PACKAGES[@]}"; do
  # "install ok installed" only: a package left half-configured must be fixed too.
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#PACKAGES[@]} packages present"
  exit 0
fi

SUDO=
if [ "$(id -u)" -ne 0 ]; then
  SUDO=sudo
fi

echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
# Debian's rabbitmq-server/postgresql postinst try to start system services; on machines
# without systemd (containers, CI) invoke-rc.d just warns. policy-rc.d 101 would also
# forbid it, but we do not need to touch the system policy: we run private instances
# (tests/env/services.sh) on non-default ports, so a system instance cannot collide.
$SUDO apt-get install -y -q --no-install-recommends \
  -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
  "${missing[@]}" </dev/null
echo "install-deps: done"
