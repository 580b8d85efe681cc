package kafkav1

// The descriptor is registered as "proxylib/api/kafka/v1/kafka.proto" so the
// file name cannot collide with another kafka.proto in the registry.
//go:generate protoc -I../../../.. --go_out=../../../.. --go_opt=paths=source_relative proxylib/api/kafka/v1/kafka.proto
