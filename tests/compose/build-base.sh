#!/usr/bin/env bash
# The Debian 12 base images the Dockerfile and the service images start FROM, made
# locally because no image registry is reachable: debootstrap a minimal bookworm from the
# Debian mirror this machine's apt already uses and import it as debian:12, then without
# docs, man pages and translations as debian:12-slim (as Debian's own images). Skipped
# when both exist. Usage: build-base.sh STATE_DIR
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
# As the official images: no recommends, no translations, no .deb left in the cache.
cat >"$root/etc/apt/apt.conf.d/90container" <<'CONF'
APT::Install-Recommends "false";
APT::Install-Suggests "false";
Acquire::Languages "none";
CONF
cat >"$root/etc/apt/apt.conf.d/docker-clean" <<'CONF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
CONF
chroot "$root" apt-get clean
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/log/*.log

import_as() { # TAG: the root as it is now
    tar -C "$root" --numeric-owner -c . | podman import -q --change 'CMD ["bash"]' - "$1" >/dev/null
}
import_as docker.io/library/debian:12
# The slim variant, as Debian's own: no docs, man pages or translations, now or later.
cat >"$root/etc/dpkg/dpkg.cfg.d/docker" <<'CONF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
path-exclude /usr/share/lintian/*
CONF
find "$root/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
find "$root/usr/share/locale" -mindepth 1 -maxdepth 1 -not -name locale.alias -exec rm -rf {} +
rm -rf "$root"/usr/share/man/* "$root"/usr/share/info/* "$root"/usr/share/groff/*
import_as docker.io/library/debian:12-slim
rm -rf "$root"
echo "compose: imported ${tags[*]}"
