"""ERROR lines in a cworker log, and which of them a test did not expect. Pure: text in,
lines out (the harness in tests/integration/conftest.py reads the files).

worker/base/log.c writes one line per event on stderr, in one of two forms:

    2026-01-02T03:04:05.678Z ERROR   cworker[123] task=<id> run=42 <message>
    2026-01-02T03:04:05.678Z ERROR   cworker[123] <message>              (no task)
    {"ts":"...","level":"ERROR","process":"cworker","pid":123,"task_id":"...","run_id":42,
     "msg":"<message>"}                                                  (LOG_FORMAT=json)

A test declares the errors it causes with `@pytest.mark.expect_log_errors(r"regex", ...)`
(on the test, its class or its module) or per worker with `expect_errors=`. A regex is
searched (re.search) in the message and in the whole line, so it may name either.
"""

import json
import re

MARKER = "expect_log_errors"

# The text form's prefix: timestamp, level padded to 7, process[pid], optional task fields.
_TEXT_LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (?P<level>[A-Z]+) +"
                        r"\S+\[\d+\] (?:task=\S* run=-?\d+ )?(?P<msg>.*)$")


def error_message(line):
    """The message of an ERROR line of either log format, or None for any other line."""
    m = _TEXT_LINE.match(line)
    if m:
        return m.group("msg") if m.group("level") == "ERROR" else None
    if line.startswith("{"):
        try:
            event = json.loads(line)
        except ValueError:
            return None
        if isinstance(event, dict) and event.get("level") == "ERROR":
            return str(event.get("msg", ""))
    return None


def compile_all(patterns):
    return [p if isinstance(p, re.Pattern) else re.compile(p) for p in patterns]


def unexpected_errors(text, patterns):
    """The ERROR lines of `text` that no regex of `patterns` matches, in log order."""
    rxs = compile_all(patterns)
    found = []
    for line in text.splitlines():
        msg = error_message(line)
        if msg is None:
            continue
        if not any(rx.search(msg) or rx.search(line) for rx in rxs):
            found.append(line)
    return found
