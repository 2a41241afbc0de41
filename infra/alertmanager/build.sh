#!/usr/bin/env bash
# Build Prometheus Alertmanager (and amtool) from Go modules into a cache outside git,
# for the delivery tests (tests/harness/alertmanager.py) and local use:
#
#   ${SPANSTREAM_CACHE:-<repo>/.cache}/alertmanager/<version>/
#     bin/alertmanager   the server (./cmd/alertmanager of the module)
#     bin/amtool         its CLI (checks infra/alertmanager/alertmanager.yml)
#     src/               the module's source, as the Go module proxy serves it
#
# `go install module/cmd/alertmanager@version` cannot build it: ui/web.go embeds
# ui/app/dist, the web UI's npm build output, which the module zip leaves out. So the
# module is downloaded (go mod download), copied, given a one-page placeholder UI, and
# built there with its own go.mod/go.sum. The API (/api/v2) and everything the tests
# use are unchanged; only the browser UI shows the placeholder.
#   ${SPANSTREAM_CACHE:-<repo>/.cache}/go/   Go build and module caches, shared by
#                                         the Collector, Alertmanager and promtool builds
#
# Idempotent: a re-run with an unchanged version only checks the stamps.
# Usage: infra/alertmanager/build.sh [--force]
set -euo pipefail

VERSION="v0.35.0"
MODULE="github.com/prometheus/alertmanager"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
CACHE="${SPANSTREAM_CACHE:-$REPO/.cache}"
OUT="$CACHE/alertmanager/$VERSION"
FORCE="${1:-}"

# shellcheck source=infra/go-env.sh
source "$REPO/infra/go-env.sh"
# Alertmanager v0.35.0's go.mod says `go 1.26.0`.
go_env alertmanager/build.sh "$OUT" 26 "Alertmanager $VERSION"
log "go $(go env GOVERSION), cache $OUT"

stamp_ok() { [[ "$FORCE" != "--force" && -x "$1" && -f "$2" && "$(cat "$2")" == "$3" ]]; }

# The module source, read-only in the module cache, copied to src/ with the placeholder UI.
prepare_source() {
    local dir
    log "go mod download $MODULE@$VERSION"
    dir="$(go mod download -json "$MODULE@$VERSION" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
    [[ -n "$dir" && -f "$dir/go.mod" ]] || { echo "alertmanager/build.sh: no source for $MODULE@$VERSION" >&2; exit 1; }
    rm -rf "$OUT/src"
    cp -r "$dir" "$OUT/src"
    chmod -R u+w "$OUT/src"
    local page='<!doctype html><title>Alertmanager</title><p>Web UI not built (infra/alertmanager/build.sh); the API is at /api/v2.'
    for ui in elm mantine; do
        mkdir -p "$OUT/src/ui/app/dist/$ui"
        printf '%s\n' "$page" >"$OUT/src/ui/app/dist/$ui/index.html"
    done
}

build_tool() {
    local name="$1" stamp="$OUT/.stamp-$1" want="$MODULE@$VERSION ./cmd/$1 ldflags-version"
    if stamp_ok "$GOBIN/$name" "$stamp" "$want"; then
        log "$name: cached ($GOBIN/$name)"
        return
    fi
    [[ -f "$OUT/src/ui/app/dist/mantine/index.html" ]] || prepare_source
    log "$name: go build ./cmd/$name (a cold build takes minutes)"
    local start=$SECONDS
    # The version Alertmanager reports (its Makefile sets it the same way); no VCS stamp
    # from whatever repository the cache directory happens to sit in.
    local ldflags="-X github.com/prometheus/common/version.Version=${VERSION#v}"
    ldflags+=" -X github.com/prometheus/common/version.Branch=$VERSION"
    (cd "$OUT/src" && go build -buildvcs=false -ldflags "$ldflags" -o "$GOBIN/$name" "./cmd/$name")
    log "$name: built in $((SECONDS - start))s"
    echo "$want" >"$stamp"
}

build_tool alertmanager
build_tool amtool
log "done: $GOBIN/alertmanager ($("$GOBIN/alertmanager" --version 2>&1 | head -n1))"
