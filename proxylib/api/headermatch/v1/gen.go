package headermatchv1

// The descriptor is registered as
// "proxylib/api/headermatch/v1/headermatch.proto" so the file name cannot
// collide with another headermatch.proto in the registry.
//go:generate protoc -I../../../.. --go_out=../../../.. --go_opt=paths=source_relative proxylib/api/headermatch/v1/headermatch.proto
