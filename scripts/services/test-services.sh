#!/usr/bin/env bash
# Starts (`up`) or stops (`down`) every service the tests use — PostgreSQL (postgres.sh) and S3
# (s3.sh, Ceph RGW) on 127.0.0.1, each in its default directory and on its default port — and on
# `up` prints the variables the tests read, one NAME=value per line.
set -euo pipefail
here=$(dirname "$0")
case "${1:-}" in
  up)
    "$here/postgres.sh" up
    "$here/s3.sh" up
    ;;
  down)
    status=0
    "$here/s3.sh" down || status=$?
    "$here/postgres.sh" down || status=$?
    exit "$status"
    ;;
  *)
    echo "usage: $0 up|down" >&2
    exit 2
    ;;
esac
