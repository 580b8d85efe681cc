package lab

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// WaitServices waits until kube-proxy on every node forwards every
// ClusterIP Service to each of its ready endpoints: the node's nat table
// matches the cluster IP and DNATs to every ready address and port. A Pod
// being Ready says nothing about this; kube-proxy programs its rules on its
// own schedule after the EndpointSlice changes, and until then a request to
// the Service fails. It gives up after timeout with what is still missing.
func WaitServices(ctx context.Context, s State, client kubernetes.Interface, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		missing, err := servicesMissing(ctx, s, client)
		if err == nil && missing == "" {
			return nil
		}
		select {
		case <-ctx.Done():
			if err == nil {
				err = errors.New(missing)
			}
			return fmt.Errorf("waiting for kube-proxy to forward the Services: %w", err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// servicesMissing names the first Service forwarding that some node's nat
// table lacks, or "" when every node forwards every Service.
func servicesMissing(ctx context.Context, s State, client kubernetes.Interface) (string, error) {
	svcs, err := client.CoreV1().Services("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return "", err
	}
	slices, err := client.DiscoveryV1().EndpointSlices("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return "", err
	}
	ready := map[string][]string{} // namespace/service → "ip:port" DNAT targets
	for _, sl := range slices.Items {
		if sl.AddressType != discoveryv1.AddressTypeIPv4 {
			continue
		}
		key := sl.Namespace + "/" + sl.Labels[discoveryv1.LabelServiceName]
		for _, ep := range sl.Endpoints {
			if ep.Conditions.Ready != nil && !*ep.Conditions.Ready {
				continue
			}
			for _, p := range sl.Ports {
				if p.Port == nil || (p.Protocol != nil && *p.Protocol != corev1.ProtocolTCP) {
					continue
				}
				for _, a := range ep.Addresses {
					ready[key] = append(ready[key], net.JoinHostPort(a, strconv.Itoa(int(*p.Port))))
				}
			}
		}
	}
	tables := make([]string, len(s.Nodes))
	for i, n := range s.Nodes {
		out, err := exec.CommandContext(ctx, "ip", "netns", "exec", n.Netns, "iptables-save", "-t", "nat").Output()
		if err != nil {
			return "", fmt.Errorf("reading the nat table of %s: %w", n.Name, err)
		}
		tables[i] = string(out)
	}
	for _, svc := range svcs.Items {
		ip := svc.Spec.ClusterIP
		key := svc.Namespace + "/" + svc.Name
		if ip == "" || ip == corev1.ClusterIPNone || svc.Spec.Type == corev1.ServiceTypeExternalName || len(ready[key]) == 0 {
			continue
		}
		for i, n := range s.Nodes {
			if !strings.Contains(tables[i], "-d "+ip+"/32 ") {
				return fmt.Sprintf("%s has no rule for Service %s (%s)", n.Name, key, ip), nil
			}
			for _, target := range ready[key] {
				if !strings.Contains(tables[i], "--to-destination "+target) {
					return fmt.Sprintf("%s does not forward Service %s to %s", n.Name, key, target), nil
				}
			}
		}
	}
	return "", nil
}
