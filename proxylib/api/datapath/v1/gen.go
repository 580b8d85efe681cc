package datapathv1

// The descriptor is registered as "proxylib/api/datapath/v1/datapath.proto"
// so the file name cannot collide with another datapath.proto in the
// registry.
//go:generate protoc -I../../../.. --go_out=../../../.. --go_opt=paths=source_relative proxylib/api/datapath/v1/datapath.proto
