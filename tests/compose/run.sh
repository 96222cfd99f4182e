#!/usr/bin/env bash
# `make compose-test`: the host packages, then the test driver. Its exit code is passed
# on: 0 passed, 1 failed, 77 skipped (podman cannot run containers on this machine). make
# itself turns any failing recipe into 2, so CI that must tell a skip from a failure
# calls this script directly (see README.md).
set -uo pipefail
cd "$(dirname "$0")/../.."
bash tests/compose/install-deps.sh || { echo "compose-test: skipped: cannot install podman" >&2; exit 77; }
exec /usr/bin/python3 tests/compose/compose_test.py "$@"
