package kube

import (
	"fmt"

	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"
	clientset "k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// Client is the API clients the Kubernetes-native mode uses: dynamic for the managed kinds and the
// objects references name, typed for Secrets and Leases, discovery for what the server serves.
type Client struct {
	Config    *rest.Config
	Dynamic   dynamic.Interface
	Kube      clientset.Interface
	Discovery discovery.DiscoveryInterface
}

// NewClient connects (lazily: no request is made) with kubeconfig when it is not "", else the
// in-cluster configuration, else KUBECONFIG (or ~/.kube/config).
func NewClient(kubeconfig string) (*Client, error) {
	rc, err := RESTConfig(kubeconfig)
	if err != nil {
		return nil, err
	}
	return NewClientFor(rc)
}

// NewClientFor returns the clients of rc.
func NewClientFor(rc *rest.Config) (*Client, error) {
	rc = rest.CopyConfig(rc)
	if rc.UserAgent == "" {
		rc.UserAgent = "eventgate"
	}
	if rc.QPS == 0 {
		rc.QPS, rc.Burst = 50, 100
	}
	dyn, err := dynamic.NewForConfig(rc)
	if err != nil {
		return nil, fmt.Errorf("kubernetes: dynamic client: %w", err)
	}
	kc, err := clientset.NewForConfig(rc)
	if err != nil {
		return nil, fmt.Errorf("kubernetes: client: %w", err)
	}
	return &Client{Config: rc, Dynamic: dyn, Kube: kc, Discovery: kc.Discovery()}, nil
}

// RESTConfig is how eventgate finds its cluster: the kubeconfig file when one is named, else the
// in-cluster configuration, else the default kubeconfig (KUBECONFIG, else ~/.kube/config).
func RESTConfig(kubeconfig string) (*rest.Config, error) {
	if kubeconfig != "" {
		rc, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
		if err != nil {
			return nil, fmt.Errorf("kubernetes.kubeconfig %s: %w", kubeconfig, err)
		}
		return rc, nil
	}
	rc, inErr := rest.InClusterConfig()
	if inErr == nil {
		return rc, nil
	}
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rc, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{}).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("kubernetes: no in-cluster config (%v) and no usable kubeconfig: %w", inErr, err)
	}
	return rc, nil
}
