#!/usr/bin/env bash
# Regenerates the Go code of the .proto files under proto/ into internal/rpc/gen/, or into
# the folder given as the first argument (the up-to-date test generates into a temporary one).
#
# Needs protoc on PATH (Debian: apt-get install protobuf-compiler). The two Go plugins are
# built from the versions go.mod pins (google.golang.org/protobuf, connectrpc.com/connect),
# so the output does not depend on what happens to be installed in GOPATH/bin.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-"$root/internal/rpc/gen"}
mkdir -p "$out"
out=$(cd "$out" && pwd)

command -v protoc >/dev/null || {
	echo "generate.sh: protoc not found; install it (Debian: apt-get install protobuf-compiler)" >&2
	exit 1
}

bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT
(cd "$root" && go build -o "$bin/" \
	google.golang.org/protobuf/cmd/protoc-gen-go \
	connectrpc.com/connect/cmd/protoc-gen-connect-go)

# Generated code is replaced whole, so a message or file removed from the .proto goes too.
rm -rf "$out/salesrank"

cd "$root/proto"
protoc \
	--plugin=protoc-gen-go="$bin/protoc-gen-go" \
	--plugin=protoc-gen-connect-go="$bin/protoc-gen-connect-go" \
	-I . \
	--go_out="$out" --go_opt=paths=source_relative \
	--connect-go_out="$out" --connect-go_opt=paths=source_relative \
	$(find . -name '*.proto' | LC_ALL=C sort)
