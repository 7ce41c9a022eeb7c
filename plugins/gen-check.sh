#!/usr/bin/env bash
# gen-check.sh fails when the checked-in generated code of the plugin protocol
# (plugins/internal/pb) is not exactly what the pinned generators produce from
# backend.proto. CI runs it; so can you after editing the .proto.
#
# Needs (CI installs them):
#   apt-get install -y protobuf-compiler            # protoc 3.21.x
#   go install google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
#   go install google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.6.2
#
# The "protoc vX" line of the generated header is ignored, so another protoc
# 3.x release does not fail the check; the Go generators must match exactly.
set -euo pipefail
cd "$(dirname "$0")/internal/pb"
export PATH="$PATH:$(go env GOPATH)/bin"

want_go="v1.36.12"
want_grpc="1.6.2"
for tool in protoc protoc-gen-go protoc-gen-go-grpc; do
	command -v "$tool" >/dev/null || { echo "gen-check: $tool not found (see the install lines at the top of $0)" >&2; exit 1; }
done
got_go="$(protoc-gen-go --version | awk '{print $2}')"
got_grpc="$(protoc-gen-go-grpc --version | awk '{print $2}')"
[ "$got_go" = "$want_go" ] || { echo "gen-check: protoc-gen-go is $got_go, want $want_go" >&2; exit 1; }
[ "$got_grpc" = "$want_grpc" ] || { echo "gen-check: protoc-gen-go-grpc is $got_grpc, want $want_grpc" >&2; exit 1; }

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
protoc --go_out="$tmp" --go_opt=paths=source_relative \
	--go-grpc_out="$tmp" --go-grpc_opt=paths=source_relative backend.proto
status=0
for f in backend.pb.go backend_grpc.pb.go; do
	if ! diff -u <(grep -Ev '^// (	|- )protoc +v' "$f") <(grep -Ev '^// (	|- )protoc +v' "$tmp/$f"); then
		echo "gen-check: plugins/internal/pb/$f is stale: run 'go generate ./plugins/internal/pb' and commit" >&2
		status=1
	fi
done
[ $status -eq 0 ] && echo "gen-check: plugins/internal/pb is current"
exit $status
