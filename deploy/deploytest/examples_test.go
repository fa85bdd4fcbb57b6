package deploytest

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"

	"github.com/eventgate/eventgate/gateway/config"
	"github.com/eventgate/eventgate/gateway/resources"
)

// TestKnativeDemoHelm renders the chart with the walkthrough's values (the seed's manifests as they
// are) and checks the gateway gets RBAC for its KubernetesEventSource and takes every manifest.
func TestKnativeDemoHelm(t *testing.T) {
	r := render(t, "-f", filepath.Join(repoRoot(t), "examples", "knative-eventing-demo", "values.yaml"))
	gw := named[*appsv1.Deployment](r, gatewayName)
	if gw == nil {
		t.Fatal("no gateway Deployment")
	}
	checkGateway(t, gw)
	checkConfigMap(t, r)
	roles := all[*rbacv1.Role](r)
	if len(roles) != 1 || roles[0].Namespace != "default" || !slices.Contains(roles[0].Rules[0].Resources, "events") {
		t.Errorf("want one Role reading events in default, got %+v", roles)
	}
	cm := named[*corev1.ConfigMap](r, gatewayName)
	set, err := resources.Decode("manifests.yaml", []byte(cm.Data["manifests.yaml"]), resources.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(set.Channels) != 1 || len(set.Subscriptions) != 1 || len(set.Sources) != 1 || len(set.Unmanaged) < 2 {
		t.Errorf("walkthrough manifests: %d channels, %d subscriptions, %d sources, %d unmanaged",
			len(set.Channels), len(set.Subscriptions), len(set.Sources), len(set.Unmanaged))
	}
}

// TestKnativeDemoDisplayManifest decodes the walkthrough's subscriber manifests strictly and checks
// the Service is where the Subscription's reference resolves.
func TestKnativeDemoDisplayManifest(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(repoRoot(t), "examples", "knative-eventing-demo", "display.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	r, err := decodeStream(data)
	if err != nil {
		t.Fatal(err)
	}
	d := named[*appsv1.Deployment](r, "knative-eventing-demo")
	s := named[*corev1.Service](r, "knative-eventing-demo")
	if d == nil || s == nil {
		t.Fatalf("want a Deployment and a Service named knative-eventing-demo, got %d objects", len(r.objects))
	}
	checkRestricted(t, d)
	if s.Spec.Ports[0].Port != 80 || !slices.Contains(d.Spec.Template.Spec.Containers[0].Args, "display") {
		t.Errorf("Service port %d, container args %v", s.Spec.Ports[0].Port, d.Spec.Template.Spec.Containers[0].Args)
	}
}

// TestKnativeDemoCompose loads docker-compose.yml with the walkthrough's override and checks the
// gateway then runs the seed's channel and subscription, delivering to the display service.
func TestKnativeDemoCompose(t *testing.T) {
	p := loadCompose(t, filepath.Join("examples", "knative-eventing-demo", "docker-compose.yml"))
	root := repoRoot(t)
	var src string
	for _, v := range p.Services["eventgate"].Volumes {
		if v.Target == "/etc/eventgate" {
			src = v.Source
		}
	}
	if want := filepath.Join(root, "examples", "knative-eventing-demo", "compose"); src != want {
		t.Fatalf("override mounts %q at /etc/eventgate, want %q", src, want)
	}
	cfg, _, err := config.Load(config.Sources{File: filepath.Join(src, "eventgate.yaml")})
	if err != nil {
		t.Fatal(err)
	}
	set, err := resources.Load([]string{filepath.Join(src, "manifests")}, resources.Options{DefaultProvisioner: cfg.Channels.DefaultProvisioner})
	if err != nil {
		t.Fatal(err)
	}
	if len(set.Subscriptions) != 1 {
		t.Fatalf("%d subscriptions", len(set.Subscriptions))
	}
	resolver := &resources.Resolver{AddressBook: cfg.AddressBook, IngressURL: cfg.IngressURL()}
	sub := set.Subscriptions[0]
	if sub.Subscriber == nil {
		t.Fatal("the seed's subscription has no subscriber")
	}
	target, err := resolver.Resolve(*sub.Subscriber)
	if err != nil {
		t.Fatal(err)
	}
	if target.URL != "http://display:8081" {
		t.Errorf("the seed's subscriber resolves to %s, want the display service http://display:8081", target)
	}
}
