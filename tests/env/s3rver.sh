#!/usr/bin/env bash
# s3rver 3.7.1, a small S3-compatible server in Node, for the S3 storage tests: loopback
# only, its objects in a directory the caller names. Installed with npm under
# <repo>/.state/s3rver (ignored by git), once.
#
#   s3rver.sh install                      npm install s3rver@3.7.1 (a no-op when present)
#   s3rver.sh run DIR PORT [BUCKET...]     exec s3rver on 127.0.0.1:PORT (foreground: the
#                                          caller owns the process), creating BUCKETs
#
# s3rver knows one access key id, S3RVER (InvalidAccessKeyId for any other), accepts any
# secret, and requires x-amz-content-sha256.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
PREFIX=$REPO/.state/s3rver
VERSION=3.7.1
MAIN=$PREFIX/node_modules/s3rver/bin/s3rver.js

installed() {
  [ -f "$MAIN" ] && grep -q "\"version\": \"$VERSION\"" "$PREFIX/node_modules/s3rver/package.json"
}

install() {
  installed && return 0
  command -v npm >/dev/null || { echo "s3rver: npm is missing (make deps)" >&2; exit 1; }
  mkdir -p "$PREFIX"
  echo "s3rver: npm install s3rver@$VERSION into $PREFIX" >&2
  npm install --prefix "$PREFIX" --no-audit --no-fund --loglevel=error "s3rver@$VERSION" >&2
  installed || { echo "s3rver: install failed" >&2; exit 1; }
}

case "${1:-}" in
  install) install ;;
  run)
    [ $# -ge 3 ] || { echo "usage: s3rver.sh run DIR PORT [BUCKET...]" >&2; exit 64; }
    install
    dir=$2 port=$3
    shift 3
    args=()
    for b in "$@"; do args+=(--configure-bucket "$b"); done
    mkdir -p "$dir"
    exec node "$MAIN" --directory "$dir" --address 127.0.0.1 --port "$port" \
      --no-vhost-buckets "${args[@]}"
    ;;
  *) echo "usage: s3rver.sh install | run DIR PORT [BUCKET...]" >&2; exit 64 ;;
esac
