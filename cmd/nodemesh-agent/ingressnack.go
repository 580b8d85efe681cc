package main

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync/atomic"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/nodemesh/nodemesh/internal/agent"
	agentapi "github.com/nodemesh/nodemesh/internal/agent/api"
	"github.com/nodemesh/nodemesh/mesh/input"
)

// reasonProxyRejected is the reason of the Warning Event a proxy's
// rejection of an Ingress's resources puts on that Ingress.
const reasonProxyRejected = "ProxyRejected"

// maxEventMessage bounds an Event's message (the API server refuses more
// than 1 KiB).
const maxEventMessage = 1024

// followIngressRejections reports the node's proxies' rejections of
// Ingresses' resources as Warning Events on those Ingresses: an Ingress
// has no conditions, and its status (the address) is the controller's.
// Each Ingress gets one Event per new set of rejections on this node
// (the node's name is in the source), none while the set is unchanged,
// and a set that clears is forgotten so the same rejection later is
// reported again. It waits on the agent's events, never polls; a failed
// write is retried at the next change of the agent's status.
func followIngressRejections(ctx context.Context, a *agent.Agent, last *atomic.Pointer[input.Snapshot], core kubernetes.Interface, node string, log *slog.Logger) {
	reported := map[input.Key]string{}
	var prev map[input.Key]string
	for {
		var cur map[input.Key]string
		_, err := a.WaitStatus(ctx, func(st *agentapi.Status) bool {
			cur = rejectionsByIngress(st.IngressRejections)
			return !mapsEqual(cur, prev)
		})
		if err != nil {
			return // ctx ended
		}
		prev = cur
		for k := range reported {
			if _, ok := cur[k]; !ok {
				delete(reported, k)
			}
		}
		snap := last.Load()
		for k, msg := range cur {
			if reported[k] == msg {
				continue
			}
			uid, ok := ingressUID(snap, k)
			if !ok {
				continue // gone meanwhile
			}
			if err := writeIngressEvent(ctx, core, k, uid, node, msg); err != nil {
				log.Warn("reporting a proxy rejection on an Ingress", "ingress", k, "err", err)
				continue
			}
			reported[k] = msg
		}
	}
}

// rejectionsByIngress joins each Ingress's rejections (one per proxy)
// into one message.
func rejectionsByIngress(rs []agentapi.IngressRejection) map[input.Key]string {
	out := map[input.Key]string{}
	for _, r := range rs {
		k := input.Key{Namespace: r.Namespace, Name: r.Name}
		if out[k] != "" {
			out[k] += "\n"
		}
		out[k] += r.Message
	}
	return out
}

func mapsEqual(a, b map[input.Key]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func ingressUID(s *input.Snapshot, k input.Key) (types.UID, bool) {
	if s == nil {
		return "", false
	}
	i := slices.IndexFunc(s.Ingresses, func(ing *networkingv1.Ingress) bool { return ing.Namespace == k.Namespace && ing.Name == k.Name })
	if i < 0 {
		return "", false
	}
	return s.Ingresses[i].UID, true
}

// writeIngressEvent creates a Warning Event on the Ingress k.
func writeIngressEvent(ctx context.Context, core kubernetes.Interface, k input.Key, uid types.UID, node, msg string) error {
	if len(msg) > maxEventMessage {
		msg = msg[:maxEventMessage-len(" … (truncated)")] + " … (truncated)"
		msg = strings.ToValidUTF8(msg, "")
	}
	now := metav1.Now()
	ev := &corev1.Event{
		ObjectMeta: metav1.ObjectMeta{GenerateName: k.Name + ".", Namespace: k.Namespace},
		InvolvedObject: corev1.ObjectReference{APIVersion: "networking.k8s.io/v1", Kind: "Ingress",
			Namespace: k.Namespace, Name: k.Name, UID: uid},
		Reason: reasonProxyRejected, Message: msg, Type: corev1.EventTypeWarning,
		Source:         corev1.EventSource{Component: "nodemesh-agent", Host: node},
		FirstTimestamp: now, LastTimestamp: now, Count: 1,
	}
	if _, err := core.CoreV1().Events(k.Namespace).Create(ctx, ev, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("creating an Event on Ingress %s: %w", k, err)
	}
	return nil
}
