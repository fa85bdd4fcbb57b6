package main

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// The Kubernetes-native mode on a real API server (scripts/kube up; see needKube): resources applied
// through the API run as files do, and their status is written back.

// TestKubeSeedWalkthrough applies the seed's manifests unchanged (its v1alpha1 Channel, Subscription
// and KubernetesEventSource) through the API: they become Ready, the channel's status.address.url
// takes events to the subscriber, and a cluster Event reaches it through the source.
func TestKubeSeedWalkthrough(t *testing.T) {
	k := needKube(t)
	demo := newSubscriber(t)
	for _, f := range []string{"channel.yaml", "subscription.yaml", "source.yaml"} {
		b, err := os.ReadFile(filepath.Join("../../testdata/knative-eventing-demo", f))
		if err != nil {
			t.Fatal(err)
		}
		k.apply(t, string(b))
	}
	g := k.startKubeGateway(t, "--set", "addressBook."+k.ns+"/knative-eventing-demo="+demo.url+"/demo")

	ch := k.waitReady(t, "eventing.knative.dev/v1alpha1", "Channel", "knative-eventing-demo-channel", "True")
	want := g.ingress + "/" + k.ns + "/knative-eventing-demo-channel"
	if got := addressURL(ch); got != want {
		t.Fatalf("channel status.address.url %q, want %q", got, want)
	}
	sub := k.waitReady(t, "eventing.knative.dev/v1alpha1", "Subscription", "knative-eventing-demo-subscription", "True")
	if got := fmt.Sprint(sub.Object["status"].(map[string]any)["physicalSubscription"]); !strings.Contains(got, demo.url+"/demo") {
		t.Errorf("subscription status.physicalSubscription %s, want the subscriber %s/demo", got, demo.url)
	}
	src := k.waitReady(t, "sources.eventing.knative.dev/v1alpha1", "KubernetesEventSource", "k8sevents", "True")
	if got := src.Object["status"].(map[string]any)["sinkUri"]; got != want {
		t.Errorf("source status.sinkUri %v, want %s", got, want)
	}

	if resp, body := post(t, want, binaryEvent("seed-1"), "hello"); resp.StatusCode != http.StatusAccepted {
		t.Fatalf("POST %s: %d %s", want, resp.StatusCode, body)
	}
	if got := demo.waitFor(t, "/demo", 1)[0]; got.header.Get("Ce-Id") != "seed-1" {
		t.Fatalf("subscriber got %q, want seed-1", got.header.Get("Ce-Id"))
	}

	// The seed's source watches namespace default: an Event created there reaches the subscriber.
	name := "eventgate-e2e." + k.ns
	now := metav1.NewTime(time.Now())
	_, err := k.c.Kube.CoreV1().Events("default").Create(context.Background(), &corev1.Event{
		ObjectMeta:     metav1.ObjectMeta{Name: name, Namespace: "default"},
		InvolvedObject: corev1.ObjectReference{APIVersion: "v1", Kind: "Pod", Namespace: "default", Name: "demo-" + k.ns},
		Reason:         "Started", Message: "Started container", Type: "Normal", Count: 1,
		FirstTimestamp: now, LastTimestamp: now,
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = k.c.Kube.CoreV1().Events("default").Delete(context.Background(), name, metav1.DeleteOptions{})
	})
	eventually(t, 20*time.Second, func() bool {
		for _, d := range demo.at("/demo") {
			if d.header.Get("Ce-Type") == "dev.knative.k8s.event" && strings.Contains(d.body, name) {
				return true
			}
		}
		return false
	}, "the cluster Event %s at the subscriber", name)
}

// TestKubeChannelSubscriptionLifecycle: a v1 InMemoryChannel and Subscription applied through the
// API deliver; a bad spec is Ready=False with validate's words, and so is a channel this gateway
// cannot run, while the others run; a bad update keeps the last good version running; an update of the subscriber URI
// takes effect; a deletion stops delivery.
func TestKubeChannelSubscriptionLifecycle(t *testing.T) {
	k := needKube(t)
	s := newSubscriber(t)
	k.apply(t, `apiVersion: messaging.knative.dev/v1
kind: InMemoryChannel
metadata: {name: orders}
---
apiVersion: messaging.knative.dev/v1
kind: Subscription
metadata: {name: billing}
spec:
  channel: {apiVersion: messaging.knative.dev/v1, kind: InMemoryChannel, name: orders}
  subscriber: {uri: "`+s.url+`/billing"}
---
apiVersion: messaging.knative.dev/v1
kind: Subscription
metadata: {name: audit}
spec:
  channel: {apiVersion: messaging.knative.dev/v1, kind: InMemoryChannel, name: orders}
  subscriber: {uri: "`+s.url+`/audit"}
---
apiVersion: messaging.knative.dev/v1
kind: Subscription
metadata: {name: broken}
spec:
  channel: {apiVersion: messaging.knative.dev/v1, kind: InMemoryChannel, name: orders}
  subscriber: {uri: "::bad"}
---
apiVersion: messaging.knative.dev/v1
kind: KafkaChannel
metadata: {name: no-kafka}
`)
	g := k.startKubeGateway(t)
	ch := k.waitReady(t, "messaging.knative.dev/v1", "InMemoryChannel", "orders", "True")
	addr := addressURL(ch)
	k.waitReady(t, "messaging.knative.dev/v1", "Subscription", "billing", "True")
	k.waitReady(t, "messaging.knative.dev/v1", "Subscription", "audit", "True")

	// The bad one: Ready=False, and why, in the words `eventgate validate` prints.
	bad := k.waitReady(t, "messaging.knative.dev/v1", "Subscription", "broken", "False")
	ready := condition(bad, "Ready")
	if ready["reason"] != "InvalidSpec" || !strings.Contains(fmt.Sprint(ready["message"]), `spec.subscriber.uri: "::bad" is not a URL`) {
		t.Errorf("broken subscription's Ready condition %v, want InvalidSpec with the problem", ready)
	}

	// A spec eventgate cannot run here (a Kafka channel, no Kafka configured) is refused alone.
	kc := condition(k.waitReady(t, "messaging.knative.dev/v1", "KafkaChannel", "no-kafka", "False"), "Ready")
	if !strings.Contains(fmt.Sprint(kc["message"]), "kafka.brokers is not configured") {
		t.Errorf("KafkaChannel's Ready condition %v, want why", kc)
	}

	post(t, addr, binaryEvent("one"), "1")
	s.waitFor(t, "/billing", 1)
	s.waitFor(t, "/audit", 1)

	// A new subscriber URI takes effect.
	k.apply(t, `apiVersion: messaging.knative.dev/v1
kind: Subscription
metadata: {name: billing}
spec:
  channel: {apiVersion: messaging.knative.dev/v1, kind: InMemoryChannel, name: orders}
  subscriber: {uri: "`+s.url+`/billing-v2"}
`)
	eventually(t, 30*time.Second, func() bool {
		u := k.get(t, "messaging.knative.dev/v1", "Subscription", "billing")
		return u != nil && strings.Contains(fmt.Sprint(u.Object["status"]), "/billing-v2")
	}, "the new subscriber URI in billing's status")
	post(t, addr, binaryEvent("two"), "2")
	if got := s.waitFor(t, "/billing-v2", 1)[0]; got.header.Get("Ce-Id") != "two" {
		t.Errorf("billing-v2 got %q, want two", got.header.Get("Ce-Id"))
	}

	// A bad update: Ready=False and why, and the last good version keeps delivering.
	k.apply(t, `apiVersion: messaging.knative.dev/v1
kind: Subscription
metadata: {name: billing}
spec:
  channel: {apiVersion: messaging.knative.dev/v1, kind: InMemoryChannel, name: orders}
  subscriber: {uri: "::bad"}
`)
	r := condition(k.waitReady(t, "messaging.knative.dev/v1", "Subscription", "billing", "False"), "Ready")
	if msg := fmt.Sprint(r["message"]); !strings.Contains(msg, `"::bad" is not a URL`) || !strings.Contains(msg, "keeps running") {
		t.Errorf("billing after a bad update: %v", r)
	}
	post(t, addr, binaryEvent("two-b"), "2b")
	eventually(t, 20*time.Second, func() bool {
		for _, d := range s.at("/billing-v2") {
			if d.header.Get("Ce-Id") == "two-b" {
				return true
			}
		}
		return false
	}, "event two-b at billing-v2 (the last good version)")

	// A deleted subscription receives no more: audit is deleted, billing (still there) shows when
	// the event has been delivered.
	k.remove(t, "messaging.knative.dev/v1", "Subscription", "audit")
	eventually(t, 30*time.Second, func() bool { return !runs(t, g, "audit") }, "the gateway to stop audit")
	before := len(s.at("/audit"))
	post(t, addr, binaryEvent("three"), "3")
	eventually(t, 20*time.Second, func() bool {
		for _, d := range s.at("/billing-v2") {
			if d.header.Get("Ce-Id") == "three" {
				return true
			}
		}
		return false
	}, "event three at billing-v2")
	if after := len(s.at("/audit")); after != before {
		t.Errorf("the deleted subscription got %d more events", after-before)
	}
}

// runs reports whether the gateway's /status lists a subscription or trigger named name.
func runs(t *testing.T, g *gateway, name string) bool {
	t.Helper()
	resp, err := http.Get(g.admin + "/status")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st struct {
		Subscriptions, Triggers []struct{ Name string }
	}
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	for _, s := range append(st.Subscriptions, st.Triggers...) {
		if s.Name == name {
			return true
		}
	}
	return false
}

// TestKubeBrokerTrigger: a Broker and a Trigger applied through the API; an event POSTed to the
// broker's status.address.url reaches the trigger's subscriber when it passes the filter.
func TestKubeBrokerTrigger(t *testing.T) {
	k := needKube(t)
	s := newSubscriber(t)
	k.apply(t, `apiVersion: eventing.knative.dev/v1
kind: Broker
metadata: {name: default}
---
apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata: {name: on-test}
spec:
  broker: default
  filter: {attributes: {type: dev.eventgate.test}}
  subscriber: {uri: "`+s.url+`/trigger"}
`)
	k.startKubeGateway(t)
	b := k.waitReady(t, "eventing.knative.dev/v1", "Broker", "default", "True")
	tr := k.waitReady(t, "eventing.knative.dev/v1", "Trigger", "on-test", "True")
	if got := tr.Object["status"].(map[string]any)["subscriberUri"]; got != s.url+"/trigger" {
		t.Errorf("trigger status.subscriberUri %v, want %s/trigger", got, s.url)
	}
	other := binaryEvent("skipped")
	other["Ce-Type"] = "dev.eventgate.other"
	post(t, addressURL(b), other, "no")
	if resp, body := post(t, addressURL(b), binaryEvent("b-1"), "yes"); resp.StatusCode != http.StatusAccepted {
		t.Fatalf("POST %s: %d %s", addressURL(b), resp.StatusCode, body)
	}
	got := s.waitFor(t, "/trigger", 1)
	if len(got) != 1 || got[0].header.Get("Ce-Id") != "b-1" {
		t.Errorf("trigger got %d events, first %q; want only b-1", len(got), got[0].header.Get("Ce-Id"))
	}
}

// TestKubeTwoReplicas: two gateways on one namespace elect one status writer (the Lease names it,
// and only it says it leads), and both serve and deliver; when the leader stops, the other writes.
// With kubernetes.managedOnly, an object without the annotation is left alone, status included.
func TestKubeTwoReplicas(t *testing.T) {
	k := needKube(t)
	s := newSubscriber(t)
	k.apply(t, `apiVersion: messaging.knative.dev/v1
kind: InMemoryChannel
metadata: {name: events, annotations: {eventgate.dev/managed: "true"}}
---
apiVersion: messaging.knative.dev/v1
kind: Subscription
metadata: {name: sink, annotations: {eventgate.dev/managed: "true"}}
spec:
  channel: {apiVersion: messaging.knative.dev/v1, kind: InMemoryChannel, name: events}
  subscriber: {uri: "`+s.url+`/sink"}
---
apiVersion: messaging.knative.dev/v1
kind: InMemoryChannel
metadata: {name: knatives}
`)
	managed := []string{"--set", "kubernetes.managedOnly=true"}
	a := k.startKubeGateway(t, managed...)
	b := k.startKubeGateway(t, managed...)
	ch := k.waitReady(t, "messaging.knative.dev/v1", "InMemoryChannel", "events", "True")
	k.waitReady(t, "messaging.knative.dev/v1", "Subscription", "sink", "True")

	var leader, follower *gateway
	eventually(t, 30*time.Second, func() bool {
		la, lb := strings.Contains(a.stderr.String(), "status writer: leading"), strings.Contains(b.stderr.String(), "status writer: leading")
		switch {
		case la && !lb:
			leader, follower = a, b
		case lb && !la:
			leader, follower = b, a
		}
		return leader != nil
	}, "one replica leading")
	lease, err := k.c.Kube.CoordinationV1().Leases(k.ns).Get(context.Background(), "eventgate-status", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if id := *lease.Spec.HolderIdentity; !strings.Contains(leader.stderr.String(), id) || strings.Contains(follower.stderr.String(), id) {
		t.Errorf("the Lease is held by %q, which is not the replica that says it leads", id)
	}

	// Both serve and deliver: each replica runs the channel and its subscription.
	path := "/" + k.ns + "/events"
	if want := leader.ingress + path; addressURL(ch) != want && addressURL(ch) != follower.ingress+path {
		t.Errorf("address %q is neither replica's", addressURL(ch))
	}
	post(t, a.ingress+path, binaryEvent("via-a"), "a")
	post(t, b.ingress+path, binaryEvent("via-b"), "b")
	ids := map[string]bool{}
	for _, d := range s.waitFor(t, "/sink", 2) {
		ids[d.header.Get("Ce-Id")] = true
	}
	if !ids["via-a"] || !ids["via-b"] {
		t.Errorf("delivered %v, want via-a and via-b", ids)
	}

	// Not annotated: not run, and its status is not touched.
	if u := k.get(t, "messaging.knative.dev/v1", "InMemoryChannel", "knatives"); u == nil || u.Object["status"] != nil {
		t.Errorf("the unmanaged channel has a status: %v", u)
	}

	// The leader stops (releasing the Lease): the other takes over and writes status.
	if err := leader.stop(30 * time.Second); err != nil {
		t.Fatalf("leader exit: %v", err)
	}
	follower.waitLog("status writer: leading", 30*time.Second)
	k.apply(t, `apiVersion: messaging.knative.dev/v1
kind: Subscription
metadata: {name: sink2, annotations: {eventgate.dev/managed: "true"}}
spec:
  channel: {apiVersion: messaging.knative.dev/v1, kind: InMemoryChannel, name: events}
  subscriber: {uri: "`+s.url+`/sink2"}
`)
	k.waitReady(t, "messaging.knative.dev/v1", "Subscription", "sink2", "True")
}

// knativeServiceCRD stands for Knative Serving's Service in the test cluster: an addressable kind
// eventgate does not run, whose status.address.url a reference resolves to.
const knativeServiceCRD = `apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: services.serving.knative.dev}
spec:
  group: serving.knative.dev
  names: {kind: Service, listKind: ServiceList, plural: services, singular: service}
  scope: Namespaced
  versions:
  - name: v1
    served: true
    storage: true
    subresources: {status: {}}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec: {type: object, x-kubernetes-preserve-unknown-fields: true}
          status: {type: object, x-kubernetes-preserve-unknown-fields: true}
`

// TestKubeReferencesAndSecrets: references resolve through the API (a Knative Service to its
// status.address.url, a core Service to its cluster DNS URL) and a GitHubSource's secretKeyRef is
// read from the Secret in the API, not from a mounted directory.
func TestKubeReferencesAndSecrets(t *testing.T) {
	k := needKube(t)
	s := newSubscriber(t)
	ctx := context.Background()
	crd := k.decode(t, knativeServiceCRD)
	if _, err := k.c.Dynamic.Resource(crdGVR).Create(ctx, crd, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	ksvcGVR := schema.GroupVersionResource{Group: "serving.knative.dev", Version: "v1", Resource: "services"}
	eventually(t, 30*time.Second, func() bool {
		u, err := k.c.Dynamic.Resource(crdGVR).Get(ctx, crd.GetName(), metav1.GetOptions{})
		return err == nil && conditionStatus(u, "Established") == "True"
	}, "the Knative Service CRD established")
	ksvc := k.decode(t, "apiVersion: serving.knative.dev/v1\nkind: Service\nmetadata: {name: demo}\nspec: {}\n")
	ksvc.SetNamespace(k.ns)
	var created *unstructured.Unstructured
	eventually(t, 30*time.Second, func() bool {
		var err error
		created, err = k.c.Dynamic.Resource(ksvcGVR).Namespace(k.ns).Create(ctx, ksvc, metav1.CreateOptions{})
		return err == nil
	}, "a Knative Service created")
	created.Object["status"] = map[string]any{"address": map[string]any{"url": s.url + "/ksvc"}}
	if _, err := k.c.Dynamic.Resource(ksvcGVR).Namespace(k.ns).UpdateStatus(ctx, created, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	// A second Knative Service answers over HTTPS with a certificate of a private CA, which it
	// announces in its status.address.CACerts, as Knative's transport encryption does.
	secure := newPrivateCAServer(t, "knative service CA")
	ksvc2 := k.decode(t, "apiVersion: serving.knative.dev/v1\nkind: Service\nmetadata: {name: secure}\nspec: {}\n")
	ksvc2.SetNamespace(k.ns)
	created2, err := k.c.Dynamic.Resource(ksvcGVR).Namespace(k.ns).Create(ctx, ksvc2, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	created2.Object["status"] = map[string]any{"address": map[string]any{"url": secure.url + "/base/", "CACerts": secure.caPEM}}
	if _, err := k.c.Dynamic.Resource(ksvcGVR).Namespace(k.ns).UpdateStatus(ctx, created2, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := k.c.Kube.CoreV1().Services(k.ns).Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Port: 8080}}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := k.c.Kube.CoreV1().Secrets(k.ns).Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "gh-secret"}, Data: map[string][]byte{"token": []byte("s3cret")},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	k.apply(t, `apiVersion: messaging.knative.dev/v1
kind: InMemoryChannel
metadata: {name: github}
---
apiVersion: messaging.knative.dev/v1
kind: Subscription
metadata: {name: to-ksvc}
spec:
  channel: {apiVersion: messaging.knative.dev/v1, kind: InMemoryChannel, name: github}
  subscriber: {ref: {apiVersion: serving.knative.dev/v1, kind: Service, name: demo}}
---
apiVersion: messaging.knative.dev/v1
kind: Subscription
metadata: {name: to-secure}
spec:
  channel: {apiVersion: messaging.knative.dev/v1, kind: InMemoryChannel, name: github}
  subscriber: {ref: {apiVersion: serving.knative.dev/v1, kind: Service, name: secure}, uri: in}
---
apiVersion: messaging.knative.dev/v1
kind: Subscription
metadata: {name: to-web}
spec:
  channel: {apiVersion: messaging.knative.dev/v1, kind: InMemoryChannel, name: github}
  subscriber: {ref: {apiVersion: v1, kind: Service, name: web}}
---
apiVersion: sources.knative.dev/v1alpha1
kind: GitHubSource
metadata: {name: repo}
spec:
  ownerAndRepository: eventgate/eventgate
  eventTypes: [push]
  secretToken: {secretKeyRef: {name: gh-secret, key: token}}
  sink: {ref: {apiVersion: messaging.knative.dev/v1, kind: InMemoryChannel, name: github}}
`)
	g := k.startKubeGateway(t)
	web := k.waitReady(t, "messaging.knative.dev/v1", "Subscription", "to-web", "True")
	if got, _, _ := unstructured.NestedString(web.Object, "status", "physicalSubscription", "subscriberUri"); got != "http://web."+k.ns+".svc.cluster.local:8080" {
		t.Errorf("a core Service resolves to %q", got)
	}
	toKsvc := k.waitReady(t, "messaging.knative.dev/v1", "Subscription", "to-ksvc", "True")
	if got, _, _ := unstructured.NestedString(toKsvc.Object, "status", "physicalSubscription", "subscriberUri"); got != s.url+"/ksvc" {
		t.Errorf("a Knative Service resolves to %q, want its status.address.url %s/ksvc", got, s.url)
	}
	k.waitReady(t, "sources.knative.dev/v1alpha1", "GitHubSource", "repo", "True")
	toSecure := k.waitReady(t, "messaging.knative.dev/v1", "Subscription", "to-secure", "True")
	if got, _, _ := unstructured.NestedString(toSecure.Object, "status", "physicalSubscription", "subscriberUri"); got != secure.url+"/base/in" {
		t.Errorf("a Knative Service with a uri resolves to %q, want %s/base/in", got, secure.url)
	}

	payload := `{"ref":"refs/heads/main","repository":{"full_name":"eventgate/eventgate"}}`
	mac := hmac.New(sha256.New, []byte("s3cret"))
	mac.Write([]byte(payload))
	hdr := map[string]string{"X-GitHub-Event": "push", "X-GitHub-Delivery": "k-1", "Content-Type": "application/json",
		"X-Hub-Signature-256": "sha256=" + hex.EncodeToString(mac.Sum(nil))}
	if resp, body := post(t, g.ingress+"/sources/"+k.ns+"/repo", hdr, payload); resp.StatusCode != http.StatusAccepted {
		t.Fatalf("a push signed with the Secret's token: %d %s", resp.StatusCode, body)
	}
	if d := s.waitFor(t, "/ksvc", 1)[0]; d.header.Get("Ce-Id") != "k-1" {
		t.Errorf("the Knative Service got %q, want k-1", d.header.Get("Ce-Id"))
	}
	eventually(t, 20*time.Second, func() bool { return len(secure.at("/base/in")) > 0 },
		"the event at the HTTPS Knative Service (its status.address.url + the subscription's uri, trusting its CACerts)")
	if got := secure.at("/base/in"); got[0] != "k-1" {
		t.Errorf("the HTTPS Knative Service got %v, want k-1", got)
	}
}
