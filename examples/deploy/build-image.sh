#!/bin/sh
# build-image.sh OUTDIR: build the file layout of the relay container image.
#
# This script is the one place that says how the image's contents are built.
# The Dockerfile's build stage runs it, and examples/deploy/image_test.go
# runs it too and then starts the result the way the image does, so what CI
# tests is what ships.
#
#   OUTDIR/relay              static binary (CGO_ENABLED=0, -trimpath, version stamped)
#   OUTDIR/plugins/NAME.wasm  first-party plugins, one per plugins/NAME/ (if plugins/ exists)
#   OUTDIR/cache/             wazero compilation cache holding those plugins' machine code
#
# Environment:
#   VERSION  version stamped into the binary (main.version); default
#            `git describe --tags --always --dirty`, else "dev"
#   GO       the go command; default "go"
#
# Needs only Go and a POSIX shell. Safe to run again over the same OUTDIR.
set -eu

die() {
	echo "build-image.sh: $*" >&2
	exit 1
}

[ $# -eq 1 ] || die "usage: build-image.sh OUTDIR"
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
GO=${GO:-go}
mkdir -p "$1"
OUT=$(cd "$1" && pwd)
VERSION=${VERSION:-$(git -C "$ROOT" describe --tags --always --dirty 2>/dev/null || echo dev)}
case $VERSION in
'' | *[!A-Za-z0-9._+-]*) die "VERSION=\"$VERSION\": want letters, digits and . _ + - only" ;;
esac

# build_relay builds the relay as one static binary: no libc, so it runs on
# distroless/static or scratch; -trimpath so the image does not depend on
# where the source was checked out; -s -w drop the symbol table and DWARF
# (stack traces still name functions and lines).
build_relay() {
	(cd "$ROOT" && CGO_ENABLED=0 "$GO" build -trimpath \
		-ldflags "-s -w -X main.version=$VERSION" \
		-o "$OUT/relay" ./cmd/relay)
}

# build_plugins builds every first-party plugin (plugins/NAME/main.go, a
# module of its own) into OUTDIR/plugins/NAME.wasm. Without plugins/ the
# image ships none.
build_plugins() {
	mkdir -p "$OUT/plugins"
	if [ ! -f "$ROOT/plugins/go.mod" ]; then
		echo "build-image.sh: no plugins/ module; the image ships no plugins"
		return 0
	fi
	for dir in "$ROOT"/plugins/*/; do
		[ -f "$dir/main.go" ] || continue
		name=$(basename "$dir")
		(cd "$ROOT/plugins" && GOOS=wasip1 GOARCH=wasm "$GO" build -trimpath \
			-buildmode=c-shared -o "$OUT/plugins/$name.wasm" "./$name")
	done
}

# precompile_plugins fills OUTDIR/cache with the wazero compilation cache of
# every plugin in OUTDIR/plugins, so a cold container loads machine code
# instead of compiling each Go plugin (0.4-1.6 s apiece on a small VM).
#
# It asks the relay itself (`relay plugins precompile -cache DIR FILE...`):
# only the plugin host knows the runtime settings its cache entries are
# keyed by (wazero version, CPU features, termination checks). Starting the
# relay with every plugin enabled instead would not do: a plugin such as
# jwt-auth refuses to start without its configuration. The relay built here
# must run on the build machine, so the image is built per architecture.
precompile_plugins() {
	mkdir -p "$OUT/cache"
	set -- "$OUT"/plugins/*.wasm
	[ -e "$1" ] || return 0
	case $("$OUT/relay" -h 2>&1 || true) in
	*"plugins precompile"*)
		"$OUT/relay" plugins precompile -cache "$OUT/cache" "$@"
		;;
	*)
		echo "build-image.sh: this relay has no 'plugins precompile'; OUTDIR/cache left empty" \
			"(plugins compile when the container starts)"
		;;
	esac
}

# finish makes the layout readable, and not writable, by any user: the image
# runs as uid 65532 while this script usually runs as root, and wazero
# writes its cache files with mode 0600.
finish() {
	chmod -R a+rX,go-w "$OUT"
	echo "build-image.sh: built $OUT (version $VERSION):"
	du -sk "$OUT/relay" "$OUT/plugins" "$OUT/cache"
	du -sk "$OUT"
}

build_relay
build_plugins
precompile_plugins
finish
