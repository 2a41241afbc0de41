#!/usr/bin/env bash
# Build Prometheus' promtool from the github.com/prometheus/prometheus Go module
# (module versions v0.3XX.Y are Prometheus releases v3.XX.Y) into a cache outside git:
#
#   ${SPANSTREAM_CACHE:-<repo>/.cache}/prometheus/<version>/
#     bin/promtool     checks and unit-tests the rules `spanstream slo rules` writes
#
# The build tag remove_all_sd leaves out the cloud service-discovery plugins, which
# promtool's rule checks and rule tests never use (most of the compile time);
# enable_dns_sd keeps DNS discovery, which infra/prometheus/prometheus.yml uses, so
# `promtool check config` reads that file.
# Idempotent: a re-run only checks the stamp.
# Usage: infra/prometheus/build.sh [--force]
set -euo pipefail

VERSION="v0.316.0"
MODULE="github.com/prometheus/prometheus"
TAGS="remove_all_sd,enable_dns_sd"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
CACHE="${SPANSTREAM_CACHE:-$REPO/.cache}"
OUT="$CACHE/prometheus/$VERSION"
FORCE="${1:-}"

export GOBIN="$OUT/bin"
# One Go build and module cache for every tool built here (shared dependencies such as
# grpc, protobuf and prometheus/common compile once); never ~/.cache or ~/go, so CI
# reuses nothing by accident.
export GOCACHE="$CACHE/go/build"
export GOMODCACHE="$CACHE/go/mod"
export GOPATH="$CACHE/go/path"
export GOFLAGS="${GOFLAGS:--trimpath}"
export GOTOOLCHAIN=local
export CGO_ENABLED=0

log() { printf '[prometheus/build.sh %s] %s\n' "$(date +%H:%M:%S)" "$*"; }

[[ -x /usr/local/go/bin/go ]] && PATH="/usr/local/go/bin:$PATH"
command -v go >/dev/null || { echo "prometheus/build.sh: go not found on PATH" >&2; exit 1; }
# The module's go.mod says `go 1.26.7`; with GOTOOLCHAIN=local an older Go refuses it.
go_minor="$(go env GOVERSION | sed -E 's/^go1\.([0-9]+).*/\1/')"
if (( go_minor < 26 )); then
    echo "prometheus/build.sh: $(go env GOVERSION) is too old, Prometheus $VERSION needs go1.26.7+" >&2
    exit 1
fi
mkdir -p "$GOBIN" "$GOCACHE" "$GOMODCACHE" "$GOPATH"

stamp="$OUT/.stamp-promtool"
want="$MODULE/cmd/promtool@$VERSION tags=$TAGS"
if [[ "$FORCE" != "--force" && -x "$GOBIN/promtool" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
    log "promtool: cached ($GOBIN/promtool)"
    exit 0
fi
log "promtool: go install -tags $TAGS $MODULE/cmd/promtool@$VERSION (cold builds take minutes)"
start=$SECONDS
# v0.316.0 is Prometheus 3.16.0: promtool --version reports the release.
release="$(sed -E 's/^v0\.([0-9])([0-9]+)\.([0-9]+)$/\1.\2.\3/' <<<"$VERSION")"
go install -tags "$TAGS" -ldflags "-X github.com/prometheus/common/version.Version=$release" \
    "$MODULE/cmd/promtool@$VERSION"
echo "$want" >"$stamp"
log "promtool: built in $((SECONDS - start))s"
log "done: $GOBIN/promtool $("$GOBIN/promtool" --version 2>&1 | head -1)"
