#!/usr/bin/env bash
# Build spanstream's OpenTelemetry Collector (otelcol-spanstream) with ocb and
# install telemetrygen, both from Go modules, into a cache outside git:
#
#   ${SPANSTREAM_CACHE:-<repo>/.cache}/collector/<version>/
#     bin/builder             ocb
#     bin/telemetrygen        load generator
#     dist/otelcol-spanstream the Collector (plus the generated Go sources)
#   ${SPANSTREAM_CACHE:-<repo>/.cache}/go/   Go build and module caches, shared by
#                                         the Collector, Alertmanager and promtool builds
#
# Idempotent: a re-run with an unchanged manifest only checks the stamps.
# Usage: infra/collector/build.sh [--force]
set -euo pipefail

VERSION="v0.155.0"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
CACHE="${SPANSTREAM_CACHE:-$REPO/.cache}"
OUT="$CACHE/collector/$VERSION"
MANIFEST="$HERE/builder-config.yaml"
FORCE="${1:-}"

# shellcheck source=infra/go-env.sh
source "$REPO/infra/go-env.sh"
# ocb and the components of this release need Go >= 1.25.
go_env build.sh "$OUT" 25 "the Collector $VERSION"
mkdir -p "$OUT/dist"
log "go $(go env GOVERSION), cache $OUT"

# Each tool is keyed by what produced it, so a changed manifest rebuilds.
stamp_ok() { [[ "$FORCE" != "--force" && -x "$1" && -f "$2" && "$(cat "$2")" == "$3" ]]; }

install_tool() {
    local name="$1" module="$2"
    local stamp="$OUT/.stamp-$name" want="$module@$VERSION"
    if stamp_ok "$GOBIN/$name" "$stamp" "$want"; then
        log "$name: cached ($GOBIN/$name)"
        return
    fi
    log "$name: go install $want"
    go install "$want"
    echo "$want" >"$stamp"
}

build_collector() {
    local stamp="$OUT/.stamp-collector" want manifest="$OUT/builder-config.yaml"
    want="$VERSION $(sha256sum "$MANIFEST" | cut -d' ' -f1)"
    if stamp_ok "$OUT/dist/otelcol-spanstream" "$stamp" "$want"; then
        log "otelcol-spanstream: cached ($OUT/dist/otelcol-spanstream)"
        return
    fi
    # ocb takes the output path from the manifest only (its flag is deprecated).
    sed "s#^  output_path: .*#  output_path: $OUT/dist#" "$MANIFEST" >"$manifest"
    log "otelcol-spanstream: ocb --config $manifest (cold builds take minutes)"
    local start=$SECONDS
    "$GOBIN/builder" --config "$manifest"
    log "otelcol-spanstream: built in $((SECONDS - start))s"
    echo "$want" >"$stamp"
}

install_tool builder go.opentelemetry.io/collector/cmd/builder
build_collector
install_tool telemetrygen github.com/open-telemetry/opentelemetry-collector-contrib/cmd/telemetrygen
log "done: $OUT/dist/otelcol-spanstream $("$OUT/dist/otelcol-spanstream" --version)"
log "done: $GOBIN/telemetrygen"
