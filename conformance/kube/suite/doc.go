// Package suite runs the official Gateway API conformance suite.
package suite
