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

# shellcheck source=infra/go-env.sh
source "$REPO/infra/go-env.sh"
# The module's go.mod says `go 1.26.7`; with GOTOOLCHAIN=local an older Go refuses it.
go_env prometheus/build.sh "$OUT" 26 "Prometheus $VERSION"

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
