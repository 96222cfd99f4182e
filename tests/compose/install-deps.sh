#!/usr/bin/env bash
# The Debian 12 packages `make compose-test` needs on the host, installed when missing:
# podman (with runc: crun cannot run containers under hybrid cgroups), podman-compose, the
# CNI dnsname plugin (without it the services cannot find each other by name: podman 4.3
# neither depends on it nor recommends it),
# debootstrap for the base image, and the Python Celery client the test publishes with.
set -euo pipefail
PACKAGES=(podman runc podman-compose golang-github-containernetworking-plugin-dnsname debootstrap
          python3-celery python3-psycopg2)
missing=()
for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
SUDO=
[ "$(id -u)" -ne 0 ] && SUDO=sudo
echo "compose: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
