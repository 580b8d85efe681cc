package gateway

import (
	"flag"
	"fmt"
	"strconv"
	"strings"

	"github.com/nodemesh/nodemesh/mesh/input"
)

// RegisterFlags defines the command-line flags of the Ingress options on
// fs, so the agent and `nodemesh translate` spell them the same way (the
// names follow Cilium's Helm values).
func (o *IngressOptions) RegisterFlags(fs *flag.FlagSet) {
	fs.BoolFunc("enable-ingress-controller", "serve Ingresses of the class (default true; false: none, whatever their class)", func(v string) error {
		on, err := strconv.ParseBool(v)
		o.Disabled = !on
		return err
	})
	fs.StringVar(&o.ClassName, "ingress-class", IngressClassName, "ingressClassName (and kubernetes.io/ingress.class value) served")
	fs.BoolVar(&o.Default, "ingress-default", false, "also serve Ingresses that name no class")
	fs.Func("ingress-loadbalancer-mode", "load-balancer mode of Ingresses without the ingress.cilium.io/loadbalancer-mode annotation: dedicated (default) or shared", func(v string) error {
		switch LoadBalancerMode(v) {
		case LoadBalancerDedicated, LoadBalancerShared:
			o.Mode = LoadBalancerMode(v)
			return nil
		}
		return fmt.Errorf("%q is not dedicated or shared", v)
	})
	fs.BoolVar(&o.EnforceHTTPS, "ingress-enforce-https", false, "force-https for Ingresses without the ingress.cilium.io/force-https annotation")
	fs.BoolVar(&o.HostNetwork, "ingress-host-network", false, "serve Ingresses in host-network mode: no Service; the node proxies of the selected nodes listen on their node address "+
		"(shared Ingresses on --ingress-host-network-shared-port, dedicated ones on their ingress.cilium.io/host-listener-port, default 8080)")
	fs.Func("ingress-host-network-shared-port", "with --ingress-host-network: port of the shared Ingresses' listener, plain HTTP and HTTPS (default 8080)", func(v string) error {
		p, ok := parsePort(v)
		if !ok {
			return fmt.Errorf("%q is not a port number (1 to 65535)", v)
		}
		o.SharedListenerPort = p
		return nil
	})
	fs.Func("ingress-default-certificate", "namespace/name of the TLS Secret serving spec.tls entries without a secretName", func(v string) error {
		ns, name, ok := strings.Cut(v, "/")
		if !ok || ns == "" || name == "" || strings.Contains(name, "/") {
			return fmt.Errorf("%q is not namespace/name", v)
		}
		o.DefaultCertificate = &input.Key{Namespace: ns, Name: name}
		return nil
	})
}
