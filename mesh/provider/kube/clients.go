package kube

import (
	"fmt"
	"os"

	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	gwclient "sigs.k8s.io/gateway-api/pkg/client/clientset/versioned"
)

// Clients are the API clients nodemesh's agent and controller use.
type Clients struct {
	Core    kubernetes.Interface
	Gateway gwclient.Interface
	Dynamic dynamic.Interface
}

// Connect loads the kubeconfig at path (else $KUBECONFIG, else the
// in-cluster service account) and builds the clients. Rate limits are
// raised from client-go's 5 requests/s, which would make a first status
// pass over thousands of routes take minutes.
func Connect(path string) (*Clients, error) {
	if path == "" {
		path = os.Getenv("KUBECONFIG")
	}
	var cfg *rest.Config
	var err error
	if path == "" {
		if cfg, err = rest.InClusterConfig(); err != nil {
			return nil, fmt.Errorf("loading in-cluster Kubernetes config (or pass --kubeconfig): %w", err)
		}
	} else if cfg, err = clientcmd.BuildConfigFromFlags("", path); err != nil {
		return nil, fmt.Errorf("loading kubeconfig %s: %w", path, err)
	}
	cfg.QPS, cfg.Burst = 50, 100
	c := &Clients{}
	if c.Core, err = kubernetes.NewForConfig(cfg); err != nil {
		return nil, fmt.Errorf("creating Kubernetes client: %w", err)
	}
	if c.Gateway, err = gwclient.NewForConfig(cfg); err != nil {
		return nil, fmt.Errorf("creating Gateway API client: %w", err)
	}
	if c.Dynamic, err = dynamic.NewForConfig(cfg); err != nil {
		return nil, fmt.Errorf("creating dynamic client: %w", err)
	}
	return c, nil
}
