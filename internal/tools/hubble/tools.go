//go:build tools

package hubble

import (
	_ "github.com/cilium/cilium/hubble"
	_ "google.golang.org/grpc/cmd/protoc-gen-go-grpc"
)
