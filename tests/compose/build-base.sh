#!/usr/bin/env bash
# The Debian 12 base images the Dockerfile and the service images start FROM, made
# locally because no image registry is reachable: debootstrap a minimal bookworm from the
# Debian mirror this machine's apt already uses, import it, tag it debian:12 and
# debian:12-slim (the official slim image is the same minbase without docs). Skipped when
# the images exist. Usage: build-base.sh STATE_DIR
set -euo pipefail
state=${1:?usage: build-base.sh STATE_DIR}
tags=(docker.io/library/debian:12 docker.io/library/debian:12-slim)

have=1
for t in "${tags[@]}"; do podman image exists "$t" || have=0; done
if [ "$have" = 1 ]; then
    echo "compose: base images exist (${tags[*]})"
    exit 0
fi

# The mirror apt uses here: deb822 (.sources) or one-line sources.list, first match wins.
mirror_url() {
    local f
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -r "$f" ] || continue
        awk '/^URIs:/ && $2 !~ /security/ {print $2; exit}' "$f"
    done | head -n1
    if [ -r /etc/apt/sources.list ]; then
        awk '/^deb / && $0 !~ /security/ {for (i = 2; i <= NF; i++) if ($i ~ /^https?:/) {print $i; exit}}' \
            /etc/apt/sources.list
    fi
}
mirror=$(mirror_url | sed -n 1p)
[ -n "$mirror" ] || { echo "compose: no Debian mirror found in /etc/apt" >&2; exit 1; }

root="$state/rootfs-bookworm"
rm -rf "$root"
mkdir -p "$state"
echo "compose: debootstrap bookworm (minbase) into $root"
debootstrap --variant=minbase --include=ca-certificates bookworm "$root" "$mirror" \
    >"$state/debootstrap.log" 2>&1 || { tail -n 30 "$state/debootstrap.log" >&2; exit 1; }

# The image's apt sees what the host's apt sees (updates and security suites too).
if ls /etc/apt/sources.list.d/*.sources >/dev/null 2>&1; then
    rm -f "$root/etc/apt/sources.list"
    cp /etc/apt/sources.list.d/*.sources "$root/etc/apt/sources.list.d/"
fi
# As the official images: no recommends, no docs or man pages, empty apt lists.
cat >"$root/etc/apt/apt.conf.d/90container" <<'CONF'
APT::Install-Recommends "false";
APT::Install-Suggests "false";
Acquire::Languages "none";
CONF
cat >"$root/etc/dpkg/dpkg.cfg.d/90container" <<'CONF'
path-exclude /usr/share/doc/*
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-include /usr/share/doc/*/copyright
CONF
chroot "$root" apt-get clean
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/log/*.log \
    "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/info/*

tar -C "$root" --numeric-owner -c . |
    podman import --change 'CMD ["bash"]' - "${tags[0]}" >/dev/null
for t in "${tags[@]:1}"; do podman tag "${tags[0]}" "$t"; done
rm -rf "$root"
echo "compose: imported ${tags[*]}"
