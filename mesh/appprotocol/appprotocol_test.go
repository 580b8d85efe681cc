package appprotocol

import "testing"

func TestH2CAndDeclared(t *testing.T) {
	p := func(s string) *string { return &s }
	for _, tc := range []struct {
		name        string
		app         *string
		port        string
		h2c, stated bool
	}{
		{"kubernetes h2c", p("kubernetes.io/h2c"), "", true, true},
		{"istio grpc appProtocol", p("GRPC"), "", true, true},
		{"istio http2 appProtocol", p("http2"), "web", true, true},
		{"appProtocol wins over name", p("http"), "grpc", false, true},
		{"unknown appProtocol is declared", p("example.com/thing"), "grpc", false, true},
		{"grpc-web appProtocol", p("grpc-web"), "", false, true},
		{"name grpc", nil, "grpc", true, true},
		{"name grpc suffix", nil, "grpc-api", true, true},
		{"name h2c", nil, "h2c", true, true},
		{"name http2 suffix", nil, "HTTP2-x", true, true},
		{"name grpc-web", nil, "grpc-web", false, true},
		{"name grpc-web suffix", nil, "grpc-web-v1", false, true},
		{"name grpcx is no protocol", nil, "grpcx", false, false},
		{"name http", nil, "http", false, true},
		{"name tcp", nil, "tcp-db", false, true},
		{"unnamed", nil, "", false, false},
		{"name web", nil, "web", false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := H2C(tc.app, tc.port); got != tc.h2c {
				t.Errorf("H2C = %v, want %v", got, tc.h2c)
			}
			if got := Declared(tc.app, tc.port); got != tc.stated {
				t.Errorf("Declared = %v, want %v", got, tc.stated)
			}
		})
	}
}
