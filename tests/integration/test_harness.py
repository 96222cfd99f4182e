"""The harness itself: an ERROR line in a worker's log that the test did not declare fails
the test, quoting the line; a declared one (marker or expect_errors) does not. The lines
come from a real worker whose HTTP listener cannot bind its port (worker/ops/http_server.c
logs `HTTP listener: ...` at ERROR and the supervisor retries it).
"""

import json
import socket
import uuid

import pytest

import log_errors
from conftest import check_error_lines, start_worker

TEXT_ERROR = ("2026-01-02T03:04:05.678Z ERROR   cworker[12] task=ab-cd run=42 "
              "cannot publish the retry of task ab-cd; the delivery is requeued: closed")
TEXT_ERROR_NO_TASK = "2026-01-02T03:04:05.678Z ERROR   http[13] HTTP listener: in use"
TEXT_WARNING = "2026-01-02T03:04:05.678Z WARNING cworker[12] executor 14 ended (status 9)"
JSON_ERROR = json.dumps({"ts": "2026-01-02T03:04:05.678Z", "level": "ERROR",
                         "process": "cworker", "pid": 12, "task_id": "ab-cd", "run_id": 42,
                         "msg": "broker connection lost: a socket error"},
                        separators=(",", ":"))
JSON_INFO = JSON_ERROR.replace('"ERROR"', '"INFO"')
SANITIZER = "==12==ERROR: AddressSanitizer: heap-use-after-free on address 0x1"


def test_error_lines_of_both_formats_are_found_and_others_are_not():
    text = "\n".join([TEXT_WARNING, TEXT_ERROR, JSON_INFO, SANITIZER, JSON_ERROR,
                      TEXT_ERROR_NO_TASK, "not a log line ERROR", ""])
    assert log_errors.unexpected_errors(text, []) == [TEXT_ERROR, JSON_ERROR,
                                                      TEXT_ERROR_NO_TASK]
    assert log_errors.error_message(TEXT_ERROR).startswith("cannot publish the retry")
    assert log_errors.error_message(JSON_ERROR) == "broker connection lost: a socket error"
    assert log_errors.error_message(TEXT_WARNING) is None


def test_a_regex_matches_the_message_or_the_whole_line():
    text = "\n".join([TEXT_ERROR, JSON_ERROR, TEXT_ERROR_NO_TASK])
    # ^ anchors at the message, not at the timestamp; run=42 is only in the line's prefix.
    assert log_errors.unexpected_errors(text, [r"^broker connection lost: ", r"run=42 ",
                                               r"^HTTP listener: "]) == []
    assert log_errors.unexpected_errors(text, [r"^cannot publish"]) == [JSON_ERROR,
                                                                      TEXT_ERROR_NO_TASK]


@pytest.fixture
def busy_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(1)
    yield s.getsockname()[1]
    s.close()


def _listener_worker(env, tmp_path, port, log_format, expect_errors=()):
    q = "cwit.harness.%s" % uuid.uuid4().hex[:8]
    w = start_worker(env, q, tmp_path / ("worker-%s.log" % log_format),
                     {"CWORKER_HTTP": "127.0.0.1:%d" % port, "LOG_FORMAT": log_format},
                     expect_errors=expect_errors)
    assert w.wait_log(r"HTTP listener: ", timeout=20), w.tail()
    return w, q


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_an_undeclared_error_line_fails_the_test_quoting_it(env, tmp_path, busy_port,
                                                            request, log_format):
    w, q = _listener_worker(env, tmp_path, busy_port, log_format)
    try:
        with pytest.raises(pytest.fail.Exception) as failed:
            check_error_lines(request.node, settle=False)
        quoted = [line for line in w.log().splitlines() if "HTTP listener: " in line]
        assert quoted and quoted[0] in str(failed.value), (str(failed.value), w.tail())
        assert "unexpected ERROR line" in str(failed.value)
        # Declared from now on: the same line again is no failure.
        request.node.add_marker(pytest.mark.expect_log_errors(r"^HTTP listener: "))
        assert w.wait_log(r"(?s)HTTP listener: .*HTTP listener: ", timeout=20), w.tail()
        check_error_lines(request.node, settle=False)
    finally:
        assert w.stop() == 0, w.tail()
        env.delete_queues(q, q + ".dead")
    w.check_log()


def test_errors_declared_for_one_worker_do_not_fail_the_test(env, tmp_path, busy_port,
                                                               request):
    w, q = _listener_worker(env, tmp_path, busy_port, "text",
                            expect_errors=[r"^HTTP listener: cannot"])
    try:
        check_error_lines(request.node, settle=True)
    finally:
        assert w.stop() == 0, w.tail()
        env.delete_queues(q, q + ".dead")
    w.check_log()
