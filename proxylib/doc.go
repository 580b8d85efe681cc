// Package proxylib is nodemesh's builtin node proxy.
package proxylib
