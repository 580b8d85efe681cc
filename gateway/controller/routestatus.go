package controller

import (
	"context"

	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/nodemesh/nodemesh/gateway"
	"github.com/nodemesh/nodemesh/mesh/input"
)

// Route status is written once over every route kind: routeAPI says, per
// kind, where an object keeps its RouteStatus and how to read and update
// it; writeRoutes and writeRoute do the rest the same way for all.

// routeAPI is the API of one route kind, for objects of type T.
type routeAPI[T metav1.Object] struct {
	kind   gwv1.Kind
	status func(T) *gwv1.RouteStatus
	copy   func(T) T
	get    func(ctx context.Context, namespace, name string) (T, error)
	update func(ctx context.Context, obj T) error
}

func (c *Controller) httpRouteAPI() routeAPI[*gwv1.HTTPRoute] {
	return routeAPI[*gwv1.HTTPRoute]{
		kind:   "HTTPRoute",
		status: func(r *gwv1.HTTPRoute) *gwv1.RouteStatus { return &r.Status.RouteStatus },
		copy:   (*gwv1.HTTPRoute).DeepCopy,
		get: func(ctx context.Context, ns, name string) (*gwv1.HTTPRoute, error) {
			return c.gw.GatewayV1().HTTPRoutes(ns).Get(ctx, name, metav1.GetOptions{})
		},
		update: func(ctx context.Context, r *gwv1.HTTPRoute) error {
			_, err := c.gw.GatewayV1().HTTPRoutes(r.Namespace).UpdateStatus(ctx, r, metav1.UpdateOptions{FieldManager: fieldManager})
			return err
		},
	}
}

func (c *Controller) grpcRouteAPI() routeAPI[*gwv1.GRPCRoute] {
	return routeAPI[*gwv1.GRPCRoute]{
		kind:   "GRPCRoute",
		status: func(r *gwv1.GRPCRoute) *gwv1.RouteStatus { return &r.Status.RouteStatus },
		copy:   (*gwv1.GRPCRoute).DeepCopy,
		get: func(ctx context.Context, ns, name string) (*gwv1.GRPCRoute, error) {
			return c.gw.GatewayV1().GRPCRoutes(ns).Get(ctx, name, metav1.GetOptions{})
		},
		update: func(ctx context.Context, r *gwv1.GRPCRoute) error {
			_, err := c.gw.GatewayV1().GRPCRoutes(r.Namespace).UpdateStatus(ctx, r, metav1.UpdateOptions{FieldManager: fieldManager})
			return err
		},
	}
}

func (c *Controller) tlsRouteAPI() routeAPI[*gwv1.TLSRoute] {
	return routeAPI[*gwv1.TLSRoute]{
		kind:   "TLSRoute",
		status: func(r *gwv1.TLSRoute) *gwv1.RouteStatus { return &r.Status.RouteStatus },
		copy:   (*gwv1.TLSRoute).DeepCopy,
		get: func(ctx context.Context, ns, name string) (*gwv1.TLSRoute, error) {
			return c.gw.GatewayV1().TLSRoutes(ns).Get(ctx, name, metav1.GetOptions{})
		},
		update: func(ctx context.Context, r *gwv1.TLSRoute) error {
			_, err := c.gw.GatewayV1().TLSRoutes(r.Namespace).UpdateStatus(ctx, r, metav1.UpdateOptions{FieldManager: fieldManager})
			return err
		},
	}
}

func (c *Controller) tcpRouteAPI() routeAPI[*gwv1.TCPRoute] {
	return routeAPI[*gwv1.TCPRoute]{
		kind:   "TCPRoute",
		status: func(r *gwv1.TCPRoute) *gwv1.RouteStatus { return &r.Status.RouteStatus },
		copy:   (*gwv1.TCPRoute).DeepCopy,
		get: func(ctx context.Context, ns, name string) (*gwv1.TCPRoute, error) {
			return c.gw.GatewayV1().TCPRoutes(ns).Get(ctx, name, metav1.GetOptions{})
		},
		update: func(ctx context.Context, r *gwv1.TCPRoute) error {
			_, err := c.gw.GatewayV1().TCPRoutes(r.Namespace).UpdateStatus(ctx, r, metav1.UpdateOptions{FieldManager: fieldManager})
			return err
		},
	}
}

func (c *Controller) udpRouteAPI() routeAPI[*gwv1.UDPRoute] {
	return routeAPI[*gwv1.UDPRoute]{
		kind:   "UDPRoute",
		status: func(r *gwv1.UDPRoute) *gwv1.RouteStatus { return &r.Status.RouteStatus },
		copy:   (*gwv1.UDPRoute).DeepCopy,
		get: func(ctx context.Context, ns, name string) (*gwv1.UDPRoute, error) {
			return c.gw.GatewayV1().UDPRoutes(ns).Get(ctx, name, metav1.GetOptions{})
		},
		update: func(ctx context.Context, r *gwv1.UDPRoute) error {
			_, err := c.gw.GatewayV1().UDPRoutes(r.Namespace).UpdateStatus(ctx, r, metav1.UpdateOptions{FieldManager: fieldManager})
			return err
		},
	}
}

// writeRoutes writes the status of every object of one kind that the
// translation gave a status, or that still carries one of ours (so a
// route that left our Gateways loses our entries).
func writeRoutes[T metav1.Object](ctx context.Context, c *Controller, api routeAPI[T], objs []T, res *gateway.Result, now metav1.Time) []error {
	ours := map[input.Key][]gwv1.RouteParentStatus{}
	for _, s := range res.Routes {
		if s.Kind == api.kind {
			ours[s.Key] = s.Status.Parents
		}
	}
	var errs []error
	for _, r := range objs {
		desired, mine := ours[input.Key{Namespace: r.GetNamespace(), Name: r.GetName()}]
		if !mine && !hasParentOf(api.status(r).Parents, c.controller) {
			continue
		}
		if err := writeRoute(ctx, c, api, r, desired, now); err != nil {
			errs = append(errs, err)
		}
	}
	return errs
}

// writeRoute merges our parents into one route's status and writes it when
// it changed, re-reading on conflicts while the generation is unchanged.
func writeRoute[T metav1.Object](ctx context.Context, c *Controller, api routeAPI[T], cur T, desired []gwv1.RouteParentStatus, now metav1.Time) error {
	name := cur.GetNamespace() + "/" + cur.GetName()
	kind := string(api.kind)
	for attempt := 1; ; attempt++ {
		next := mergeRoute(*api.status(cur), desired, c.controller, now)
		if equality.Semantic.DeepEqual(*api.status(cur), next) {
			return nil
		}
		cp := api.copy(cur)
		*api.status(cp) = next
		err := api.update(ctx, cp)
		if done, err := settled(err, attempt, kind, name); done {
			return err
		}
		fresh, err := api.get(ctx, cur.GetNamespace(), cur.GetName())
		if err != nil {
			return ignoreNotFound(err, kind, name)
		}
		if fresh.GetGeneration() != cur.GetGeneration() {
			return nil
		}
		cur = fresh
	}
}
