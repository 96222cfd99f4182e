"""Hostile uploads: each ends FAILED with a message a person understands, or COMPLETE with
its warnings counted in metrics; the worker writes nothing to disk, stays up, and the
paloalto run published right after each one completes.

The archives are built at test time (tests/py/hostile_archives.py) and uploaded as the
application does (tests/py/producer.py): a run, its `files` row, the blob under the
storage root, parse_run published through real Python Celery, then PARSING committed.
One module-scoped worker serves every case.
"""

import gzip
import os
import tarfile
import time
from pathlib import Path

import pytest

import hostile_archives as H
import producer
from conftest import paloalto_upload, wait_for_final_status

TYPED = ("inputs", "props", "transforms", "indexes", "outputs", "serverclasses")
GOOD = ("app/default/good.conf", H.GOOD_CONF)
PALOALTO_STANZAS = 181
LIMIT_S = 20.0  # a bomb must fail by size, long before any time limit
# Parsing a million stanzas before the run-wide limit trips takes ~15 s under ASan.
SLOW_S = {"run_stanza_limit": 60.0, "many_stanzas_one_file": 60.0, "settings_bomb": 60.0,
          "large_file_fails_late": 60.0, "serverclass_flood": 60.0}


def submit(env, celery, queue, name, data, run_type="APP_BUNDLE"):
    pconn = env.producer_conn()
    try:
        run_id, _ = producer.create_run(pconn, [(name, data)], str(env.storage),
                                        run_type=run_type)
        producer.enqueue(pconn, celery, run_id, queue=queue)
    finally:
        pconn.close()
    return run_id


def stanza_paths(env, run_id):
    return sorted(r["source_path"] for r in env.rows(
        "SELECT source_path FROM stanzas WHERE run_id = %s", (run_id,)))


def tgz(entries, **kw):
    return H.tar_bytes(entries, mode="w:gz", **kw)


def paloalto_tgz():
    return paloalto_upload("tar.gz")


# ----------------------------------------------------------------------------- cases
#
# (id, upload name, builder, expected status, expected text in error_message (FAILED) or
#  {"warnings": minimum, "parse_errors": n, "stanzas": [source paths]} (COMPLETE))

FAIL = "FAILED"
OK = "COMPLETE"
INVALID = "Permanent error: Invalid archive format: "
LIMIT = "Permanent error: Archive limit exceeded: "


def _truncated(data, at):
    return data[:at] if at >= 0 else data[:len(data) + at]


def _half(data):
    return data[:len(data) // 2]


def _palo_tgz_bytes():
    return paloalto_tgz()[1]


def _palo_tar_bytes():
    return paloalto_upload("tar")[1]


def _palo_zip_bytes():
    return paloalto_upload("zip")[1]


def _gzip_bad_crc():
    d = bytearray(_palo_tgz_bytes())
    d[-8] ^= 0xFF
    return bytes(d)


def _gzip_bad_isize():
    d = bytearray(_palo_tgz_bytes())
    d[-1] ^= 0x01
    return bytes(d)


def _bz2_truncated():
    import bz2

    return bz2.compress(_palo_tar_bytes())[:3000]


def _xz_truncated():
    import lzma

    return lzma.compress(_palo_tar_bytes())[:3000]


CASES = [
    # --- paths
    ("traversal_tar", "t.tgz", lambda: tgz([GOOD, ("../../etc/passwd.conf", b"[x]\n"),
                                           ("a/../../b.conf", b"[x]\n"),
                                           ("app/../../../etc/inputs.conf", b"[x]\n")]),
     OK, {"warnings": 3, "stanzas": ["app/default/good.conf"]}),
    ("absolute_tar", "t.tar", lambda: H.tar_bytes([GOOD, ("/etc/splunk/inputs.conf", b"[x]\n")]),
     OK, {"warnings": 1, "stanzas": ["app/default/good.conf"]}),
    ("traversal_zip", "t.zip", lambda: H.zip_bytes([GOOD, ("../evil.conf", b"[x]\n"),
                                                   ("/abs/inputs.conf", b"[x]\n"),
                                                   ("a/../../b.conf", b"[x]\n")]),
     OK, {"warnings": 3, "stanzas": ["app/default/good.conf"]}),
    ("links_tar", "t.tgz", lambda: tgz([
        GOOD,
        ("app/default/out.conf", b"", tarfile.SYMTYPE, "/etc/passwd"),
        ("app/default/in.conf", b"", tarfile.SYMTYPE, "good.conf"),
        ("app/default/up.conf", b"", tarfile.SYMTYPE, "../../../../etc/shadow"),
        ("app/default/hard_in.conf", b"", tarfile.LNKTYPE, "app/default/good.conf"),
        ("app/default/hard_out.conf", b"", tarfile.LNKTYPE, "../../etc/shadow"),
    ]), OK, {"warnings": 5, "stanzas": ["app/default/good.conf"]}),
    ("symlink_zip", "t.zip", lambda: H.zip_bytes([GOOD, ("app/default/ln.conf", b"/etc/passwd",
                                                        0o120777)]),
     OK, {"warnings": 1, "stanzas": ["app/default/good.conf"]}),
    ("devices_tar", "t.tar", lambda: H.tar_bytes([
        GOOD,
        ("app/default/chr.conf", b"", tarfile.CHRTYPE, "", 1, 3),
        ("app/default/blk.conf", b"", tarfile.BLKTYPE, "", 8, 0),
        ("app/default/fifo.conf", b"", tarfile.FIFOTYPE, ""),
    ]), OK, {"warnings": 3, "stanzas": ["app/default/good.conf"]}),
    ("control_char_path", "t.tgz", lambda: tgz([GOOD, ("app/default/in\x01puts.conf", b"[x]\n"),
                                                ("app/default/new\nline.conf", b"[x]\n")]),
     OK, {"warnings": 2, "stanzas": ["app/default/good.conf"]}),
    ("non_utf8_path", "t.tar", lambda: H.tar_bytes(
        [GOOD, ("app/default/caf\udce9.conf", b"[x]\nk = v\n"),
         ("../\udcff\udcfe.conf", b"[y]\n")], fmt=tarfile.GNU_FORMAT),
     OK, {"warnings": 2, "stanzas": ["app/default/caf?.conf", "app/default/good.conf"]}),
    ("long_path", "t.tgz", lambda: tgz([GOOD, ("app/default/" + "x" * 3000 + ".conf",
                                               b"[x]\n")]),
     OK, {"warnings": 1, "nstanzas": 2}),
    ("deep_path", "t.tgz", lambda: tgz([GOOD, ("/".join(["d"] * 40) + "/deep.conf", b"[x]\n")]),
     FAIL, LIMIT + "entry path deeper than 20 components"),
    # --- bombs and limits
    ("gzip_bomb_2GiB", "bomb.tgz", H.gzip_bomb, FAIL, LIMIT + "entry app/default/inputs.conf"),
    ("gzip_bomb_total", "bomb.tgz", H.gzip_bomb_many, FAIL, LIMIT + "archive inflates beyond"),
    ("zip_bomb_1GiB", "bomb.zip", H.zip_bomb, FAIL, LIMIT + "entry app/default/inputs.conf"),
    ("zip_bomb_lying_sizes", "bomb.zip", lambda: H.zip_bomb(lie=True), FAIL,
     LIMIT + "entry app/default/inputs.conf inflates beyond 104857600 bytes"),
    ("tar_sparse_4GiB", "sparse.tar", H.tar_sparse, FAIL, LIMIT + "entry app/lookups/huge.csv"),
    ("entry_count", "many.tgz", lambda: H.many_entries(10001), FAIL,
     LIMIT + "more than 10000 entries"),
    # --- pathological content
    ("line_50MB", "t.tgz",
     lambda: tgz([GOOD, ("app/default/props.conf", b"k = " + b"a" * (50 << 20))]),
     OK, {"parse_errors": 1, "error": "line 1: line longer than 1048576 bytes",
          "stanzas": ["app/default/good.conf"]}),
    # Stanzas stream out of the parser, so a file may have any number (the run's limit
    # holds); what one stanza may hold is bounded instead.
    ("many_stanzas_one_file", "t.tgz",
     lambda: tgz([GOOD, ("app/default/props.conf", b"[s]\n" * 150000)]),
     OK, {"nstanzas": 150001, "typed": {"props": 150000}}),
    ("settings_bomb", "t.tgz",
     lambda: tgz([GOOD, ("app/default/props.conf",
                         b"[s]\n" + b"".join(b"k%d = v\n" % i for i in range(200000)))]),
     OK, {"parse_errors": 1, "error": "line 100002: more than 100000 settings in one stanza",
          "stanzas": ["app/default/good.conf"]}),
    ("stanza_bytes_bomb", "t.tgz",
     lambda: tgz([GOOD, ("app/default/props.conf",
                         b"[s]\n" + b"".join(b"k%d = %s\n" % (i, b"v" * 1000000)
                                             for i in range(10)))]),
     OK, {"parse_errors": 1, "error": "line 6: stanza larger than 4194304 bytes",
          "stanzas": ["app/default/good.conf"]}),
    # A file whose rows were already streamed (behind a savepoint) when it turns out not
    # to parse: its rows are rolled back, those of the files around it stay.
    ("large_file_fails_late", "t.tgz",
     lambda: tgz([GOOD, ("app/default/props.conf",
                         b"".join(b"[st_%d]\nTRANSFORMS-a = t%d\nk = v\n" % (i, i)
                                  for i in range(100000)) + b"[last]\nk = \xff\n"),
                  ("app/local/after.conf", b"[after]\nk = v\n")]),
     OK, {"parse_errors": 1, "error": "line 300002: invalid UTF-8",
          "stanzas": ["app/default/good.conf", "app/local/after.conf"], "typed": {"props": 0}}),
    ("run_stanza_limit", "t.tgz", lambda: tgz([("app/default/p%d.conf" % i, b"[s]\n" * 100000)
                                               for i in range(11)]),
     FAIL, LIMIT + "more than 1000000 stanzas in the run"),
    # Serverclasses are aggregated over the run before their rows exist: bounded too.
    ("serverclass_flood", "t.tgz",
     lambda: tgz([GOOD, ("etc/system/local/serverclass.conf",
                         b"".join(b"[serverClass:c%d]\n" % i for i in range(100001)))]),
     FAIL, LIMIT + "serverclass stanzas and settings over 100000 or 16 MiB in the run"),
    ("stanza_name_5000", "t.tgz", lambda: tgz([GOOD, ("app/default/props.conf",
                                                      b"[" + b"n" * 5000 + b"]\nk = v\n")]),
     OK, {"warnings": 1, "nstanzas": 2}),
    ("nul_bytes", "t.tgz", lambda: tgz([GOOD, ("app/default/props.conf", b"[a]\nk = v\0w\n")]),
     OK, {"parse_errors": 1, "error": "line 2: NUL byte (not a text file)",
          "stanzas": ["app/default/good.conf"]}),
    ("invalid_utf8", "t.tgz",
     lambda: tgz([GOOD, ("app/default/props.conf", b"[a]\nk = \xff\xfe\n")]),
     OK, {"parse_errors": 1, "error": "line 2: invalid UTF-8",
          "stanzas": ["app/default/good.conf"]}),
    # --- damaged archives
    ("tgz_truncated_10", "t.tgz", lambda: _truncated(_palo_tgz_bytes(), 10), FAIL, INVALID),
    ("tgz_truncated_half", "t.tgz", lambda: _half(_palo_tgz_bytes()), FAIL, INVALID),
    ("tgz_truncated_trailer", "t.tgz", lambda: _truncated(_palo_tgz_bytes(), -4), FAIL,
     INVALID + "gzip data is truncated"),
    ("tgz_bad_crc", "t.tgz", _gzip_bad_crc, FAIL,
     INVALID + "gzip data is corrupt: incorrect data check"),
    ("tgz_bad_isize", "t.tgz", _gzip_bad_isize, FAIL,
     INVALID + "gzip data is corrupt: incorrect length check"),
    ("tar_truncated_header", "t.tar", lambda: _truncated(_palo_tar_bytes(), 1024 + 200), FAIL,
     INVALID),
    ("tar_truncated_data", "t.tar", lambda: _half(_palo_tar_bytes()) + b"x", FAIL, INVALID),
    ("tar_bad_checksum", "t.tar", H.tar_bad_checksum, FAIL,
     INVALID + "damaged tar: the first header fails its checksum"),
    ("bz2_truncated", "t.tar.bz2", _bz2_truncated, FAIL, INVALID),
    ("xz_truncated", "t.tar.xz", _xz_truncated, FAIL,
     INVALID + "xz data is truncated or corrupt"),
    ("zip_truncated_cd", "t.zip", lambda: _truncated(_palo_zip_bytes(), -30), FAIL,
     INVALID + "damaged zip"),
    ("zip_truncated_half", "t.zip", lambda: _half(_palo_zip_bytes()), FAIL,
     INVALID + "damaged zip"),
    ("zip_bad_crc", "t.zip", H.zip_bad_crc, FAIL, INVALID),
    ("zip_lying_offset", "t.zip", H.zip_lying_offset, FAIL, INVALID),
    ("zip_lying_count", "t.zip", H.zip_lying_cd_count, FAIL, INVALID),
    ("gzip_not_tar", "t.tgz", lambda: gzip.compress(b"[a]\nk = v\n"), FAIL,
     INVALID + "gzip-compressed data is not a tar archive"),
    ("nested_gzip", "t.tgz", lambda: gzip.compress(_palo_tgz_bytes()), FAIL,
     INVALID + "nested compression"),
    # --- no archive at all
    ("empty_file", "t.tgz", lambda: b"", FAIL, INVALID + "empty file"),
    ("random_bytes", "t.tgz", H.random_bytes, FAIL, INVALID),
    ("png_header", "t.zip", lambda: H.PNG + H.random_bytes(2000), FAIL, INVALID),
    ("plain_conf_as_tgz", "inputs.tgz", lambda: b"[monitor:///var/log]\nindex = main\n", OK,
     {"warnings": 1, "stanzas": ["inputs.tgz.conf"]}),
]


# ----------------------------------------------------------------------------- disk


def _tree(pid):
    out = [pid]
    try:
        for tid in os.listdir("/proc/%d/task" % pid):
            kids = Path("/proc/%d/task/%s/children" % (pid, tid)).read_text().split()
            for k in kids:
                out.extend(_tree(int(k)))
    except OSError:
        pass
    return out


def _write_bytes(pid):
    try:
        for line in Path("/proc/%d/io" % pid).read_text().splitlines():
            if line.startswith("write_bytes:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


class DiskWatch:
    """write_bytes of the worker's processes, summed over every process seen alive."""

    def __init__(self, root_pid):
        self.root = root_pid
        self.first = {}
        self.last = {}
        self.sample()

    def sample(self):
        for p in _tree(self.root):
            w = _write_bytes(p)
            self.first.setdefault(p, w)
            self.last[p] = w

    def written(self):
        return sum(self.last[p] - self.first[p] for p in self.last)


@pytest.fixture(scope="module")
def disk(worker):
    return DiskWatch(worker.proc.pid)


# ----------------------------------------------------------------------------- tests


def check_failed(env, run, expected):
    assert run["status"] == "FAILED", run
    msg = run["error_message"]
    assert msg.startswith(expected), msg
    assert len(msg) < 500 and "\ufffd" not in msg, msg
    assert run["error_traceback"] and "parse_run" in run["error_traceback"], run
    assert run["retry_count"] == 0
    assert run["metrics"]["error_type"] == "permanent", run["metrics"]
    assert env.scalar("SELECT count(*) FROM stanzas WHERE run_id = %s", (run["id"],)) == 0
    for t in TYPED:
        assert env.scalar("SELECT count(*) FROM %s WHERE run_id = %%s" % t, (run["id"],)) == 0


def check_complete(env, run, expected):
    assert run["status"] == "COMPLETE", run
    assert run["error_message"] is None, run
    m = run["metrics"]
    assert m["warnings"] >= expected.get("warnings", 0), m
    assert m["parse_errors"] == expected.get("parse_errors", 0), m
    if expected.get("error"):
        assert m["parse_error_details"][0]["error"] == expected["error"], m
        assert m["parse_error_details"][0]["path"] == "app/default/props.conf", m
    paths = stanza_paths(env, run["id"])
    if "stanzas" in expected:
        assert paths == sorted(expected["stanzas"]), paths
    if "nstanzas" in expected:
        assert len(paths) == expected["nstanzas"], paths
    assert m["stanzas_created"] == len(paths)
    for table, count in expected.get("typed", {}).items():
        assert m["typed_projections"][table] == count, m
        assert env.scalar("SELECT count(*) FROM %s WHERE run_id = %%s" % table,
                          (run["id"],)) == count
    for p in paths:
        assert ".." not in p.split("/") and not p.startswith("/"), p


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_hostile_upload(env, worker, celery, disk, case):
    cid, name, build, status, expected = case
    data = build()
    started = time.time()
    run_id = submit(env, celery, worker.queue, name, data)
    # The next, ordinary run is published right behind it.
    pname, pdata = paloalto_tgz()
    next_id = submit(env, celery, worker.queue, pname, pdata)
    run = wait_for_final_status(env, run_id, timeout=SLOW_S.get(cid, LIMIT_S), worker=worker)
    took = time.time() - started
    if status == FAIL:
        check_failed(env, run, expected)
    else:
        check_complete(env, run, expected)
    after = wait_for_final_status(env, next_id, timeout=10, worker=worker)
    assert after["status"] == "COMPLETE", after
    assert after["metrics"]["stanzas_created"] == PALOALTO_STANZAS
    disk.sample()
    m = run["metrics"]
    detail = run["error_message"] or "warnings=%s parse_errors=%s %s" % (
        m["warnings"], m["parse_errors"],
        "; ".join(d["error"] for d in m.get("parse_error_details") or []))
    print("%-24s %-8s %5.2fs %s" % (cid, run["status"], took, detail))


def test_nothing_was_written_to_disk(env, worker, disk):
    """Gigabytes went through the worker above; what it wrote to storage is its log."""
    disk.sample()
    print("worker processes wrote %d bytes to storage" % disk.written())
    assert disk.written() < 4 << 20, disk.written()
    leftovers = [p for p in Path(env.storage).rglob("*") if p.is_file()
                 and not (p.parent.name.isdigit() and p.parent.parent.name == "runs")]
    assert not leftovers, leftovers
    assert not (Path(env.storage) / "etc").exists()
