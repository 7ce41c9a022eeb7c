// Package pb holds the generated Go code of the regioncache plugin protocol
// (backend.proto). It is internal: plugin authors use package plugins, which
// needs no protoc.
//
// The generator is pinned: protoc-gen-go v1.36.12 and protoc-gen-go-grpc
// v1.6.2 (install commands in plugins/gen-check.sh), with protoc 3.21.x.
// plugins/gen-check.sh fails when the checked-in code is not what they
// generate.
package pb

//go:generate protoc --go_out=. --go_opt=paths=source_relative --go-grpc_out=. --go-grpc_opt=paths=source_relative backend.proto
