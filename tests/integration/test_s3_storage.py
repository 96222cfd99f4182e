"""STORAGE_BACKEND=s3: the S3 backend of upload_source against a real S3-compatible server.

s3rver 3.7.1 runs on loopback (tests/py/s3_server.py); boto3 plays the application and
uploads the objects. The backend is driven through build*/tests/s3_fetch (tests/tools/
s3_fetch.c: s3_source_open + upload_source_read with the worker's own configuration), which
writes the object to stdout, its SHA-256 and peak RSS to stderr, and exits 0, 75 (transient)
or 65 (permanent). Faults: a missing key that appears later, the store killed mid-download
and restarted, a connection cut or frozen mid-body (tests/py/tcp_proxy.py), an unknown key
id, a missing bucket, nothing listening; answers s3rver never gives (503 SlowDown, 403
AccessDenied / SignatureDoesNotMatch) come from a fake S3 (FakeS3), which also checks the
request's Signature V4 against botocore's. No run may print a credential.

Environment: CWORKER_BIN (s3_fetch is looked for beside it, in tests/), or CWORKER_S3_FETCH.
"""

import hashlib
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "py"))

import s3_server  # noqa: E402
from tcp_proxy import TcpProxy  # noqa: E402

BUCKET = "cw-uploads"
SECRET = "wJalrXUtnFEMI-K7MDENG-bPxRfiCYSECRETzz"  # s3rver takes any secret
SANITIZER_RE = re.compile(r"ERROR: \w*Sanitizer|runtime error:|Sanitizer: detected")
TRANSIENT, PERMANENT = 75, 65
MiB = 1024 * 1024


def _fetch_bin():
    explicit = os.environ.get("CWORKER_S3_FETCH")
    if explicit:
        return explicit
    bin_ = Path(os.environ.get("CWORKER_BIN") or REPO / "build" / "cworker")
    return str(bin_.parent / "tests" / "s3_fetch")


S3_FETCH = _fetch_bin()


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    if not os.access(S3_FETCH, os.X_OK):
        pytest.fail("%s is missing: make tools (or, for the sanitizer build, make "
                    "BUILD=build-asan EXTRA_CFLAGS=... EXTRA_LDFLAGS=... build-asan/tests/"
                    "s3_fetch, as `make integration` does)" % S3_FETCH)
    d = tmp_path_factory.mktemp("s3rver")
    s = s3_server.S3rver(d / "data", [BUCKET], d / "s3rver.log")
    yield s
    s.stop()


@pytest.fixture(scope="module")
def s3(store):
    return store.client()


def s3_env(endpoint, **over):
    env = s3_server.env_without_aws()
    env.update(STORAGE_BACKEND="s3", S3_BUCKET=BUCKET, S3_ENDPOINT_URL=endpoint,
               AWS_ACCESS_KEY_ID=s3_server.ACCESS_KEY, AWS_SECRET_ACCESS_KEY=SECRET,
               S3_CONNECT_TIMEOUT="3", S3_READ_TIMEOUT="3")
    env.update(over)
    return {k: v for k, v in env.items() if v is not None}


class Result:
    def __init__(self, rc, out, err):
        self.rc, self.out, self.err = rc, out, err
        m = re.search(r"^sha256 ([0-9a-f]{64}) bytes (\d+)$", err, re.M)
        self.sha256, self.nbytes = (m.group(1), int(m.group(2))) if m else (None, None)
        m = re.search(r"^vmhwm_kb (\d+)$", err, re.M)
        self.vmhwm_kb = int(m.group(1)) if m else None
        m = re.search(r"^error: (\w+): (.*)$", err, re.M)
        self.error = m.group(2) if m else None


def check_output(r, env):
    """What every run must hold: no sanitizer report, no credential anywhere."""
    assert not SANITIZER_RE.search(r.err), r.err
    for name in ("AWS_SECRET_ACCESS_KEY", "AWS_ACCESS_KEY_ID", "AWS_SESSION_TOKEN"):
        value = env.get(name)
        if value:
            assert value not in r.err, "%s's value printed:\n%s" % (name, r.err)
            assert r.rc == 0 or value.encode() not in r.out
    # the store's own error text (FakeS3 sends a StringToSign) is never echoed
    assert "StringToSign" not in r.err and "AWS4-HMAC-SHA256" not in r.err


def fetch(key, endpoint, out_path=None, timeout=120, **over):
    env = s3_env(endpoint, **over)
    if out_path:
        with open(out_path, "wb") as f:
            p = subprocess.run([S3_FETCH, key], env=env, stdout=f, stderr=subprocess.PIPE,
                               timeout=timeout)
        r = Result(p.returncode, b"", p.stderr.decode())
    else:
        p = subprocess.run([S3_FETCH, key], env=env, capture_output=True, timeout=timeout)
        r = Result(p.returncode, p.stdout, p.stderr.decode())
    check_output(r, env)
    return r


def put_random(s3, key, size, tmp_path):
    """Uploads size random bytes from a file (boto3 as the application does); returns
    (path, sha256)."""
    path = tmp_path / ("obj-%d" % size)
    h = hashlib.sha256()
    with open(path, "wb") as f:
        left = size
        while left:
            chunk = os.urandom(min(left, 4 * MiB))
            f.write(chunk)
            h.update(chunk)
            left -= len(chunk)
    s3.upload_file(str(path), BUCKET, key)
    return path, h.hexdigest()


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(MiB), b""):
            h.update(chunk)
    return h.hexdigest()


# --------------------------------------------------------------------------- the object


def test_small_object_exact_bytes_and_hash(store, s3):
    data = b"[monitor:///var/log]\nsourcetype = syslog\n" * 500 + bytes(range(256))
    key = "runs/7/Splunk TA+ü (copy).tar.gz"  # encoded in the URL, signed as encoded
    s3.put_object(Bucket=BUCKET, Key=key, Body=data)
    r = fetch(key, store.endpoint)
    assert r.rc == 0, r.err
    assert r.out == data
    assert r.sha256 == hashlib.sha256(data).hexdigest() and r.nbytes == len(data)


def test_empty_object(store, s3):
    s3.put_object(Bucket=BUCKET, Key="runs/8/empty", Body=b"")
    r = fetch("runs/8/empty", store.endpoint)
    assert r.rc == 0, r.err
    assert r.out == b"" and r.nbytes == 0
    assert r.sha256 == hashlib.sha256(b"").hexdigest()


def test_large_object_streams_in_bounded_memory(store, s3, tmp_path):
    """96 MiB through a 256 KiB buffer: exact bytes and hash, and the peak RSS grows by
    far less than the object (nothing is held whole, nothing written to disk)."""
    small = fetch("runs/8/empty", store.endpoint)
    assert small.rc == 0, small.err
    size = 96 * MiB
    _, digest = put_random(s3, "runs/9/big.tar.gz", size, tmp_path)
    out = tmp_path / "big.out"
    r = fetch("runs/9/big.tar.gz", store.endpoint, out_path=out)
    assert r.rc == 0, r.err
    assert r.nbytes == size and r.sha256 == digest
    assert sha256_file(out) == digest
    grown_mib = (r.vmhwm_kb - small.vmhwm_kb) / 1024
    assert grown_mib < 24, "peak RSS grew %.1f MiB for a %d MiB object" % (grown_mib,
                                                                            size // MiB)


# --------------------------------------------------------------------------- missing things


def test_missing_key_is_transient_and_found_once_uploaded(store, s3):
    key = "runs/10/late.tar.gz"
    r = fetch(key, store.endpoint)
    assert r.rc == TRANSIENT, r.err
    assert r.error == "storage object %s not found in bucket %s (NoSuchKey)" % (key, BUCKET)
    assert r.out == b""
    s3.put_object(Bucket=BUCKET, Key=key, Body=b"landed")  # the upload lands
    r = fetch(key, store.endpoint)
    assert r.rc == 0, r.err
    assert r.out == b"landed"


def test_missing_bucket_is_permanent_naming_s3_bucket(store):
    r = fetch("runs/1/x", store.endpoint, S3_BUCKET="no-such-bucket")
    assert r.rc == PERMANENT, r.err
    assert r.error == ("storage object runs/1/x: S3_BUCKET 'no-such-bucket' does not exist "
                       "in the store (NoSuchBucket)")


def test_unknown_access_key_is_permanent_and_not_shown(store):
    r = fetch("runs/1/x", store.endpoint, AWS_ACCESS_KEY_ID="AKIAUNKNOWN0TEST4242")
    assert r.rc == PERMANENT, r.err
    assert r.error == ("storage object runs/1/x: AWS_ACCESS_KEY_ID is not known to the "
                       "store (InvalidAccessKeyId)")
    assert "AKIAUNKNOWN0TEST4242" not in r.err


def test_nothing_listening_is_transient():
    port = s3_server.free_port()  # closed again: connection refused
    r = fetch("runs/1/x", "http://127.0.0.1:%d" % port)
    assert r.rc == TRANSIENT, r.err
    assert r.error.startswith("storage object runs/1/x: the store is unreachable: ")
    assert "Couldn't connect to server" in r.error


# --------------------------------------------------------------------------- broken downloads


def test_store_killed_mid_download_is_transient_then_restarted(store, s3, tmp_path):
    """The harness is held (its stdout not read) a few MiB in, so the transfer is paused
    mid-body when s3rver is killed; the rest of the body never comes."""
    size = 48 * MiB
    _, digest = put_random(s3, "runs/11/cut.tar.gz", size, tmp_path)
    env = s3_env(store.endpoint)
    p = subprocess.Popen([S3_FETCH, "runs/11/cut.tar.gz"], env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    got = len(p.stdout.read(2 * MiB))
    store.stop()  # SIGKILL
    try:
        while True:
            chunk = p.stdout.read(MiB)
            if not chunk:
                break
            got += len(chunk)
        err = p.stderr.read().decode()
        rc = p.wait(timeout=30)
    finally:
        store.start()
    r = Result(rc, b"", err)
    check_output(r, env)
    assert r.rc == TRANSIENT, err
    m = re.match(r"storage object runs/11/cut\.tar\.gz: download cut after (\d+) bytes: ",
                 r.error or "")
    assert m, err
    assert int(m.group(1)) == got and 2 * MiB <= got < size
    again = fetch("runs/11/cut.tar.gz", store.endpoint, out_path=tmp_path / "again")
    assert again.rc == 0, again.err
    assert again.sha256 == digest


@pytest.mark.parametrize("then", ["cut", "freeze"])
def test_connection_broken_mid_body_is_transient(store, s3, tmp_path, then):
    """A proxy passes 1 MiB of the answer, then cuts the connection or goes silent
    (S3_READ_TIMEOUT=2: a stalled download gives up instead of hanging)."""
    size = 8 * MiB
    put_random(s3, "runs/12/%s.tar.gz" % then, size, tmp_path)
    with TcpProxy(("127.0.0.1", store.port)) as proxy:
        proxy.limit_down(MiB, then)
        t0 = time.monotonic()
        r = fetch("runs/12/%s.tar.gz" % then, "http://127.0.0.1:%d" % proxy.port,
                  S3_READ_TIMEOUT="2", timeout=60)
        elapsed = time.monotonic() - t0
    assert r.rc == TRANSIENT, r.err
    m = re.match(r"storage object runs/12/\w+\.tar\.gz: download cut after (\d+) bytes: ",
                 r.error or "")
    assert m, r.err
    assert 0 < int(m.group(1)) < MiB
    assert len(r.out) == int(m.group(1))
    if then == "freeze":
        assert "too slow" in r.error, r.error
        assert 1.5 < elapsed < 20, elapsed


# --------------------------------------------------------------------------- answers s3rver never gives


@pytest.mark.parametrize("status,code,rc,message", [
    (503, "SlowDown", TRANSIENT, "storage object runs/1/x: the store answered HTTP 503 "
                                 "(SlowDown)"),
    (500, "InternalError", TRANSIENT, "storage object runs/1/x: the store answered HTTP 500 "
                                      "(InternalError)"),
    (403, "SignatureDoesNotMatch", PERMANENT,
     "storage object runs/1/x: the store rejected the signature: AWS_SECRET_ACCESS_KEY does "
     "not match AWS_ACCESS_KEY_ID (SignatureDoesNotMatch)"),
    (403, "AccessDenied", TRANSIENT,
     "storage object runs/1/x: access denied in bucket cw-uploads for AWS_ACCESS_KEY_ID's "
     "identity, or the object is not there yet (AccessDenied)"),
])
def test_store_answers_are_classified(status, code, rc, message):
    with s3_server.FakeS3(status, code) as fake:
        r = fetch("runs/1/x", fake.endpoint)
    assert r.rc == rc, r.err
    assert r.error == message


def test_request_is_signed_as_s3_checks_it():
    """s3rver accepts any secret, so the Signature V4 is checked here against botocore's
    for the very request the backend sent: what AWS or MinIO would verify."""
    with s3_server.FakeS3(404, "NoSuchKey") as fake:
        r = fetch("runs/3/Splunk TA+ü.tgz", fake.endpoint, AWS_REGION="eu-west-3",
                  AWS_SESSION_TOKEN="FwoGZXIvYXdzEXAMPLETOKEN")
        (req,) = fake.requests
    assert r.rc == TRANSIENT, r.err
    h = {k.lower(): v for k, v in req["headers"].items()}
    assert req["path"] == "/%s/runs/3/Splunk%%20TA%%2B%%C3%%BC.tgz" % BUCKET
    assert h["x-amz-content-sha256"] == hashlib.sha256(b"").hexdigest()
    assert h["x-amz-security-token"] == "FwoGZXIvYXdzEXAMPLETOKEN"
    assert "/eu-west-3/s3/aws4_request" in h["authorization"]
    signed = h["authorization"].split("SignedHeaders=")[1].split(",")[0].split(";")
    assert {"host", "x-amz-content-sha256", "x-amz-date", "x-amz-security-token"} <= set(signed)
    got = h["authorization"].split("Signature=")[1]
    assert got == s3_server.sigv4_signature(req, SECRET, "eu-west-3")


# --------------------------------------------------------------------------- configuration


def cworker(args, env):
    bin_ = os.environ.get("CWORKER_BIN") or str(REPO / "build" / "cworker")
    return subprocess.run([bin_] + args, env=env, capture_output=True, text=True, timeout=30)


@pytest.mark.parametrize("drop,variable", [("S3_BUCKET", "S3_BUCKET"),
                                           ("AWS_ACCESS_KEY_ID", "AWS_ACCESS_KEY_ID"),
                                           ("AWS_SECRET_ACCESS_KEY", "AWS_SECRET_ACCESS_KEY")])
def test_worker_refuses_s3_without_settings(drop, variable):
    env = s3_env("http://127.0.0.1:9", **{drop: None})
    p = cworker(["run"], env)
    assert p.returncode == 2, p.stdout + p.stderr
    assert p.stderr.strip() == "cworker: STORAGE_BACKEND=s3 needs %s" % variable
    assert SECRET not in p.stdout + p.stderr


def test_run_help_lists_the_s3_settings():
    p = cworker(["run", "--help"], s3_server.env_without_aws())
    assert p.returncode == 0
    for flag in ("--storage-backend", "--s3-bucket", "--s3-endpoint-url",
                 "--s3-addressing-style", "--aws-region"):
        assert flag in p.stdout
    env_only = p.stdout.split("environment only:")[1]
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_CA_BUNDLE"):
        assert var in env_only
