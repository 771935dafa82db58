#!/usr/bin/env bash
# The test command from the README: every package, with the race detector.
# Long soaks and fuzzing are opt-in (see README, "Testing").
set -euo pipefail
cd "$(dirname "$0")"
export PATH="$PATH:/usr/local/go/bin"
exec go test -race -count=1 "$@" ./...
