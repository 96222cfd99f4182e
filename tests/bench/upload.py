"""The upload-shaped workload of `make bench` (called from tests/bench/large.py): an archive
like a real Splunk etc/ directory, BENCH_UPLOAD_MB (80) MB or more compressed, where most
bytes are not .conf text (app binaries, lookups, bundles: incompressible payload) and the
.conf files are BENCH_UPLOAD_APPS (300) copies of the Palo Alto add-on's 16 files. On such
an upload the run's time is set by reading the archive, so it is compared with the two tools
that only read it: `sha256sum` plus `gzip -dc` of the same file. Ratios, never asserted.
"""

import io
import os
import tarfile

import large as L

PALOALTO = os.path.join(L.B.REPO, "tests", "testdata", "splunk_ta_paloalto", "default")
CHUNK = 1 << 20


def conf_files():
    out = []
    for name in sorted(os.listdir(PALOALTO)):
        with open(os.path.join(PALOALTO, name), "rb") as f:
            out.append((name, f.read()))
    return out


def add(tar, path, data):
    info = tarfile.TarInfo(path)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def build(path, target_mb, apps):
    """Writes the archive; returns (entries, .conf entries, stanzas expected per copy)."""
    confs = conf_files()
    payload_per_app = max(1, (target_mb * 1024 * 1024) // apps)
    entries = nconf = 0
    with tarfile.open(path, "w:gz", compresslevel=6) as tar:
        for a in range(apps):
            top = "etc/apps/bench_app%d" % a
            for name, data in confs:
                add(tar, "%s/default/%s" % (top, name), data)
                entries, nconf = entries + 1, nconf + 1
            left, part = payload_per_app, 0
            while left > 0:
                n = min(CHUNK, left)
                add(tar, "%s/bin/lib/part%d.so" % (top, part), os.urandom(n))
                left, part, entries = left - n, part + 1, entries + 1
            add(tar, "%s/lookups/hosts.csv" % top,
                b"".join(b"host%d,10.0.%d.%d\n" % (i, i // 250, i % 250) for i in range(2000)))
            entries += 1
    return entries, nconf


def main(env, workdir, pg_pid, cworker, contenders):
    target_mb = int(os.environ.get("BENCH_UPLOAD_MB", "80"))
    apps = int(os.environ.get("BENCH_UPLOAD_APPS", "300"))
    if target_mb <= 0:
        return None
    archive = os.path.join(workdir, "bench_upload.tar.gz")
    L.B.log("upload: generating %d MB over %d apps" % (target_mb, apps))
    entries, nconf = build(archive, target_mb, apps)
    sha_s, gunzip_s = L.tool_floor(archive)
    results = []
    for name in contenders:
        L.B.log("upload: %s" % name)
        r = L.run_large(name, env, archive, 0, workdir, pg_pid, cworker)
        L.B.log("  %(status)s, %(stanzas)d stanzas in %(wall_seconds).1f s" % r)
        results.append(r)
    size = os.path.getsize(archive)
    os.unlink(archive)
    return {"archive_bytes": size,
            "target_mb": target_mb, "apps": apps, "entries": entries, "conf_entries": nconf,
            "sha256sum_seconds": round(sha_s, 2), "gzip_dc_seconds": round(gunzip_s, 2),
            "results": results}


def report(up):
    if not up:
        return []
    tools = up["sha256sum_seconds"] + up["gzip_dc_seconds"]
    out = ["", "upload-shaped archive: %.1f MB tar.gz, %d entries (%d .conf in %d apps), %d MB"
           " of incompressible payload; sha256sum %.2f s + gzip -dc %.2f s = %.2f s"
           % (up["archive_bytes"] / 1e6, up["entries"], up["conf_entries"], up["apps"],
              up["target_mb"],
              up["sha256sum_seconds"], up["gzip_dc_seconds"], tools)]
    for r in up["results"]:
        out.append("%-10s %9s %8.2f s  %6d stanzas  RSS %6.1f MiB  %.2fx of sha256sum + gzip -dc"
                   % (r["contender"], r["status"], r["wall_seconds"], r["stanzas"],
                      r["rss_peak_mib"], r["wall_seconds"] / tools if tools else 0))
    return out
