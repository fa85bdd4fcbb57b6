package kube

import (
	"context"
	"fmt"
	"maps"
	"strconv"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/eventgate/eventgate/gateway/resources"
)

// addressTimeout bounds the lookups of one snapshot's references.
const addressTimeout = 10 * time.Second

// Address is the address of a reference as the API server has it (a resources.Resolver's Lookup):
// a core Service's cluster DNS URL, or any addressable object's status.address (a Knative Service,
// a Knative channel or broker that eventgate does not run): its url and CACerts. False when the
// last snapshot found none: the resolver then falls back to the in-cluster Knative address. Safe
// for concurrent use.
func (s *Source) Address(ref resources.Reference) (resources.Address, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	u, ok := s.addresses[refKey(ref)]
	return u, ok
}

func refKey(r resources.Reference) string {
	return r.APIVersion + "/" + r.Kind + "/" + r.Namespace + "/" + r.Name
}

// AddressesChanged looks the last snapshot's references up again and reports whether any address
// changed since (a Knative Service that got its URL): the caller then reloads. Blocks on the API.
func (s *Source) AddressesChanged() bool {
	last := s.Last()
	if last == nil {
		return false
	}
	s.mu.Lock()
	before := s.addresses
	s.mu.Unlock()
	return !maps.Equal(before, s.lookupAddresses(last.Set))
}

// lookupAddresses reads from the API the address of every reference of set that is neither a
// channel nor a broker, keeps them for Address and returns them.
func (s *Source) lookupAddresses(set *resources.Set) map[string]resources.Address {
	var refs []resources.Reference
	add := func(d *resources.Destination) {
		if d != nil && d.Ref != nil && !d.Ref.IsChannel() && !d.Ref.IsBroker() && d.Ref.Name != "" {
			refs = append(refs, *d.Ref)
		}
	}
	for _, x := range set.Subscriptions {
		add(x.Subscriber)
		add(x.Reply)
		if x.Delivery != nil {
			add(x.Delivery.DeadLetterSink)
		}
	}
	for _, x := range set.Triggers {
		add(x.Subscriber)
		if x.Delivery != nil {
			add(x.Delivery.DeadLetterSink)
		}
	}
	for _, x := range set.Sources {
		add(&x.Sink)
	}
	ctx, cancel := context.WithTimeout(context.Background(), addressTimeout)
	defer cancel()
	found := map[string]resources.Address{}
	for _, r := range refs {
		if _, done := found[refKey(r)]; done {
			continue
		}
		if u, ok := s.lookup(ctx, r); ok {
			found[refKey(r)] = u
		}
	}
	s.mu.Lock()
	s.addresses = found
	s.mu.Unlock()
	return found
}

// lookup finds one reference's address: a core Service by its DNS name (when it exists), anything
// else by its status.address (url and CACerts).
func (s *Source) lookup(ctx context.Context, r resources.Reference) (resources.Address, bool) {
	gv, err := schema.ParseGroupVersion(r.APIVersion)
	if err != nil {
		return resources.Address{}, false
	}
	if gv.Group == "" && r.Kind == "Service" {
		svc, err := s.client.Kube.CoreV1().Services(r.Namespace).Get(ctx, r.Name, metav1.GetOptions{})
		if err != nil {
			return resources.Address{}, false
		}
		host := svc.Name + "." + svc.Namespace + ".svc.cluster.local"
		for _, p := range svc.Spec.Ports {
			if p.Port != 80 && len(svc.Spec.Ports) == 1 {
				host += ":" + strconv.Itoa(int(p.Port))
			}
		}
		return resources.Address{URL: "http://" + host}, true
	}
	resource, ok := s.resourceOf(gv, r.Kind)
	if !ok {
		return resources.Address{}, false
	}
	u, err := s.client.Dynamic.Resource(gv.WithResource(resource)).Namespace(r.Namespace).Get(ctx, r.Name, metav1.GetOptions{})
	if err != nil {
		return resources.Address{}, false
	}
	url, _, _ := unstructured.NestedString(u.Object, "status", "address", "url")
	caCerts, _, _ := unstructured.NestedString(u.Object, "status", "address", "CACerts")
	return resources.Address{URL: url, CACerts: caCerts}, url != ""
}

// resourceOf finds the resource name of kind in gv through discovery.
func (s *Source) resourceOf(gv schema.GroupVersion, kind string) (string, bool) {
	list, err := s.client.Discovery.ServerResourcesForGroupVersion(gv.String())
	if err != nil {
		return "", false
	}
	for _, r := range list.APIResources {
		if r.Kind == kind && !strings.Contains(r.Name, "/") {
			return r.Name, true
		}
	}
	return "", false
}

// ReadSecret reads key ref.Key of Secret ref.Name in namespace from the API server (an adapter's
// secretKeyRef, for a source the cluster declares). Errors name the Secret and the key. Safe for
// concurrent use.
func (s *Source) ReadSecret(namespace string, ref resources.SecretKeyRef) ([]byte, error) {
	if ref.Name == "" || ref.Key == "" {
		return nil, fmt.Errorf("%w: secretKeyRef needs a name and a key", resources.ErrSecretRef)
	}
	ctx, cancel := context.WithTimeout(context.Background(), addressTimeout)
	defer cancel()
	sec, err := s.client.Kube.CoreV1().Secrets(namespace).Get(ctx, ref.Name, metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("Secret %s/%s: %w", namespace, ref.Name, err)
	}
	b, ok := sec.Data[ref.Key]
	if !ok {
		return nil, fmt.Errorf("Secret %s/%s has no key %q", namespace, ref.Name, ref.Key)
	}
	return b, nil
}
