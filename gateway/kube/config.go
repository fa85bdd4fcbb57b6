package kube

import (
	"strings"
	"time"

	"github.com/eventgate/eventgate/gateway/config/check"
)

// Config is the kubernetes section of the configuration (koanf tags are its keys): how the
// Kubernetes-native mode watches the cluster and writes status. The mode itself is switched on by
// resources.kubernetes (or `serve --kubernetes`).
type Config struct {
	// Namespaces are the namespaces watched; empty (the default): all of them.
	Namespaces []string `koanf:"namespaces"`
	// ManagedOnly limits the gateway to resources annotated eventgate.dev/managed: "true" (and
	// Brokers of class eventgate), for clusters where Knative's own controllers run the others.
	// Default false: every resource of eventgate's kinds in the watched namespaces.
	ManagedOnly bool `koanf:"managedOnly"`
	// Kubeconfig is the kubeconfig file to use outside a cluster; "" (the default): the in-cluster
	// configuration, else KUBECONFIG, else ~/.kube/config.
	Kubeconfig string `koanf:"kubeconfig"`
	// LeaseNamespace and LeaseName name the coordination.k8s.io Lease the replicas elect the one
	// status writer with. Default: the pod's namespace (POD_NAMESPACE, else the service account's
	// namespace, else "default") and "eventgate-status".
	LeaseNamespace string `koanf:"leaseNamespace"`
	LeaseName      string `koanf:"leaseName"`
	// LeaseDuration is how long a leader that stopped renewing keeps the lease (default 15s): the
	// longest time no replica writes status after the leader dies.
	LeaseDuration time.Duration `koanf:"leaseDuration"`
}

// DefaultLeaseName is the Lease's name when kubernetes.leaseName is not set.
const DefaultLeaseName = "eventgate-status"

// DefaultConfig returns the defaults: every namespace, every resource, the in-cluster config.
func DefaultConfig() Config {
	return Config{LeaseName: DefaultLeaseName, LeaseDuration: 15 * time.Second}
}

// Validate checks the settings; keys are relative to the section.
func (c Config) Validate() error {
	var p check.Problems
	for i, ns := range c.Namespaces {
		if !dnsLabel(ns) {
			p.Add("namespaces", "entry %d, %q, is not a namespace name", i, ns)
		}
	}
	if c.LeaseName != "" && !dnsSubdomain(c.LeaseName) {
		p.Add("leaseName", "%q is not a Kubernetes object name", c.LeaseName)
	}
	if c.LeaseNamespace != "" && !dnsLabel(c.LeaseNamespace) {
		p.Add("leaseNamespace", "%q is not a namespace name", c.LeaseNamespace)
	}
	p.PositiveDuration("leaseDuration", c.LeaseDuration)
	return p.Err()
}

// dnsLabel reports whether s is an RFC 1123 label (a namespace name).
func dnsLabel(s string) bool {
	if len(s) == 0 || len(s) > 63 {
		return false
	}
	for i, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
		case r == '-' && i > 0 && i < len(s)-1:
		default:
			return false
		}
	}
	return true
}

// dnsSubdomain reports whether s is an RFC 1123 subdomain (most object names).
func dnsSubdomain(s string) bool {
	if len(s) == 0 || len(s) > 253 {
		return false
	}
	for part := range strings.SplitSeq(s, ".") {
		if !dnsLabel(part) {
			return false
		}
	}
	return true
}
