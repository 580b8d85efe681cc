package lab

import (
	"context"
	"fmt"
	"net"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/nodemesh/nodemesh/internal/lab/dns"
	"github.com/nodemesh/nodemesh/internal/lab/network"
)

// startDNS serves the cluster DNS on the control plane's address (port 53,
// UDP and TCP) and publishes it as kube-system/kube-dns at DNSServiceIP:
// a Service without selector whose EndpointSlice points at the server, so
// Pods reach it through kube-proxy as they reach CoreDNS in a cluster.
func (l *Lab) startDNS(ctx, runCtx context.Context) (*dns.Server, error) {
	s := dns.New(l.Client, ClusterDomain, l.log.With("component", "dns"))
	addr := net.JoinHostPort(network.ControlPlaneIP.String(), "53")
	cp := l.Network.ControlPlane
	var pc net.PacketConn
	err := cp.Do(func() error {
		var err error
		pc, err = net.ListenPacket("udp4", addr)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("listening for DNS on udp %s: %w", addr, err)
	}
	tl, err := cp.Listen("tcp4", addr)
	if err != nil {
		pc.Close()
		return nil, fmt.Errorf("listening for DNS on tcp %s: %w", addr, err)
	}
	l.goRun("dns", func() error { return s.Run(runCtx) })
	l.goRun("dns udp", func() error { return s.ServeUDP(runCtx, pc) })
	l.goRun("dns tcp", func() error { return s.ServeTCP(runCtx, tl) })

	labels := map[string]string{"k8s-app": "kube-dns", "kubernetes.io/name": "CoreDNS"}
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "kube-dns", Namespace: metav1.NamespaceSystem, Labels: labels},
		Spec: corev1.ServiceSpec{
			ClusterIP: DNSServiceIP.String(),
			Ports: []corev1.ServicePort{
				{Name: "dns", Port: 53, Protocol: corev1.ProtocolUDP, TargetPort: intstr.FromInt32(53)},
				{Name: "dns-tcp", Port: 53, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromInt32(53)},
			},
		},
	}
	if _, err := l.Client.CoreV1().Services(svc.Namespace).Create(ctx, svc, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return nil, fmt.Errorf("creating the kube-dns Service: %w", err)
	}
	ready := true
	udp, tcp := corev1.ProtocolUDP, corev1.ProtocolTCP
	port, dnsName, tcpName := int32(53), "dns", "dns-tcp"
	slice := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Name: "kube-dns-lab", Namespace: metav1.NamespaceSystem, Labels: map[string]string{
			discoveryv1.LabelServiceName: "kube-dns", discoveryv1.LabelManagedBy: "lab.nodemesh.io",
		}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{network.ControlPlaneIP.String()}, Conditions: discoveryv1.EndpointConditions{Ready: &ready}}},
		Ports:       []discoveryv1.EndpointPort{{Name: &dnsName, Port: &port, Protocol: &udp}, {Name: &tcpName, Port: &port, Protocol: &tcp}},
	}
	if _, err := l.Client.DiscoveryV1().EndpointSlices(slice.Namespace).Create(ctx, slice, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return nil, fmt.Errorf("creating the kube-dns EndpointSlice: %w", err)
	}
	return s, nil
}
