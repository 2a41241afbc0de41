# shellcheck shell=bash
# The Go environment of every tool built from Go modules here (infra/collector,
# infra/alertmanager, infra/prometheus build.sh), sourced by each:
#
#   go_env NAME OUT MIN_GO_MINOR WHAT
#
# GOBIN is OUT/bin. One Go build and module cache for all of them under
# ${SPANSTREAM_CACHE:-<repo>/.cache}/go (shared dependencies such as grpc, protobuf
# and prometheus/common compile once); never ~/.cache or ~/go, so CI reuses nothing
# by accident. -trimpath keeps local paths out of the binaries; a local toolchain
# only, never a downloaded one. Stops with one line when Go is missing or older than
# 1.MIN_GO_MINOR. Defines log() prefixed with NAME.

go_env() {
    local out=$2 min_minor=$3 what=$4 go_minor
    GO_ENV_NAME=$1
    export GOBIN="$out/bin"
    export GOCACHE="$CACHE/go/build"
    export GOMODCACHE="$CACHE/go/mod"
    export GOPATH="$CACHE/go/path"
    export GOFLAGS="${GOFLAGS:--trimpath}"
    export GOTOOLCHAIN=local
    export CGO_ENABLED=0
    [[ -x /usr/local/go/bin/go ]] && PATH="/usr/local/go/bin:$PATH"
    command -v go >/dev/null || { echo "$GO_ENV_NAME: go not found on PATH" >&2; exit 1; }
    go_minor="$(go env GOVERSION | sed -E 's/^go1\.([0-9]+).*/\1/')"
    if (( go_minor < min_minor )); then
        echo "$GO_ENV_NAME: $(go env GOVERSION) is too old, $what needs go1.$min_minor+" >&2
        exit 1
    fi
    mkdir -p "$GOBIN" "$GOCACHE" "$GOMODCACHE" "$GOPATH"
}

log() { printf '[%s %s] %s\n' "$GO_ENV_NAME" "$(date +%H:%M:%S)" "$*"; }
