"""S3-compatible servers on loopback for the S3 storage tests.

- `S3rver`: the real s3rver 3.7.1 (Node; installed and run by tests/env/s3rver.sh) on a
  free 127.0.0.1 port, its objects in a directory; stop()/start() kill and bring it back on
  the same port and data, as a store restarting mid-download. `client()` is boto3, the
  application's side, uploading objects.
- `FakeS3`: a one-thread HTTP server that answers every request with a chosen status and
  S3 error code, and keeps each request's method, path and headers: for the answers
  s3rver never gives (503 SlowDown, AccessDenied, SignatureDoesNotMatch) and to check the
  request signature against botocore's.

s3rver knows one access key id, S3RVER; it accepts any secret.
"""

import http.server
import os
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
ACCESS_KEY = "S3RVER"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_port(port, timeout, proc=None):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError("s3rver exited %s" % proc.returncode)
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("nothing listens on 127.0.0.1:%d after %ss" % (port, timeout))


class S3rver:
    def __init__(self, directory, buckets, log_path):
        subprocess.run(["bash", str(REPO / "tests/env/s3rver.sh"), "install"], check=True,
                       timeout=300)
        self.directory = Path(directory)
        self.buckets = list(buckets)
        self.log_path = Path(log_path)
        self.port = free_port()
        self.proc = None
        self.start()

    @property
    def endpoint(self):
        return "http://127.0.0.1:%d" % self.port

    def start(self):
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            ["bash", str(REPO / "tests/env/s3rver.sh"), "run", str(self.directory),
             str(self.port)] + self.buckets,
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        log.close()
        _wait_port(self.port, 30, self.proc)

    def stop(self, sig=signal.SIGKILL):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=10)
        self.proc = None

    def client(self, secret="S3RVER"):
        import boto3
        from botocore.config import Config

        return boto3.client("s3", endpoint_url=self.endpoint, aws_access_key_id=ACCESS_KEY,
                            aws_secret_access_key=secret, region_name="us-east-1",
                            config=Config(s3={"addressing_style": "path"}))


class FakeS3:
    """Answers (status, code) to every request; `requests` holds what came."""

    def __init__(self, status=404, code="NoSuchKey"):
        self.status, self.code = status, code
        self.requests = []
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):
                fake.requests.append({"method": self.command, "path": self.path,
                                      "headers": dict(self.headers.items())})
                body = ("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>%s</Code>"
                        "<Message>fake</Message><StringToSign>AWS4-HMAC-SHA256 leak"
                        "</StringToSign></Error>" % fake.code).encode()
                self.send_response(fake.status)
                self.send_header("Content-Type", "application/xml")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.1}, daemon=True)
        self._thread.start()

    @property
    def endpoint(self):
        return "http://127.0.0.1:%d" % self.port

    def close(self):
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def sigv4_signature(request, secret, region):
    """The Signature= botocore computes for a captured request (its own timestamp and
    signed headers): the reference a real S3 would check the worker's request against."""
    from botocore.auth import S3SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    headers = {k.lower(): v for k, v in request["headers"].items()}
    auth = headers["authorization"]
    signed = auth.split("SignedHeaders=")[1].split(",")[0].split(";")
    url = "http://%s%s" % (headers["host"], request["path"])
    req = AWSRequest(method=request["method"], url=url,
                     headers={h: headers[h] for h in signed if h != "host"})
    req.context["timestamp"] = headers["x-amz-date"]
    signer = S3SigV4Auth(Credentials(auth.split("Credential=")[1].split("/")[0], secret), "s3",
                       region)
    canonical = signer.canonical_request(req)
    return signer.signature(signer.string_to_sign(req, canonical), req)


def env_without_aws():
    return {k: v for k, v in os.environ.items()
            if not k.startswith(("AWS_", "S3_", "STORAGE_"))}
