package deploytest

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"

	"github.com/eventgate/eventgate/gateway/config"
	"github.com/eventgate/eventgate/gateway/resources"
	"github.com/eventgate/eventgate/gateway/tracing"
)

const (
	gatewayName = "eg-eventgate" // release "eg", chart "eventgate"
	ingressSvc  = "http://eg-eventgate.events.svc.cluster.local:8080"
)

// chartCases are the default values and every ci values file, so a new ci file is covered at once.
func chartCases(t *testing.T) map[string][]string {
	t.Helper()
	cases := map[string][]string{"default": nil}
	files, err := filepath.Glob(filepath.Join(repoRoot(t), "charts", "eventgate", "ci", "*-values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 5 {
		t.Fatalf("want at least 5 ci values files, found %d", len(files))
	}
	for _, f := range files {
		cases[filepath.Base(f)] = []string{"-f", f}
	}
	return cases
}

// TestChartRendersValidObjects renders the chart for every values file, decodes every object strictly
// and checks the properties every render must have.
func TestChartRendersValidObjects(t *testing.T) {
	helmBinary(t)
	for name, args := range chartCases(t) {
		t.Run(name, func(t *testing.T) {
			r := render(t, append(slices.Clone(withCRDs), args...)...)
			gw := named[*appsv1.Deployment](r, gatewayName)
			if gw == nil {
				t.Fatalf("no Deployment %s among %d objects", gatewayName, len(r.objects))
			}
			checkGateway(t, gw)
			for _, d := range all[*appsv1.Deployment](r) {
				checkRestricted(t, d)
			}
			checkServices(t, r)
			checkConfigMap(t, r)
		})
	}
}

// checkRestricted asserts the "restricted" Pod Security Standard on every container of d.
func checkRestricted(t *testing.T, d *appsv1.Deployment) {
	t.Helper()
	pod := d.Spec.Template.Spec
	podSC := pod.SecurityContext
	for _, c := range pod.Containers {
		sc := c.SecurityContext
		if sc == nil {
			t.Errorf("%s/%s: no securityContext", d.Name, c.Name)
			continue
		}
		nonRoot := (sc.RunAsNonRoot != nil && *sc.RunAsNonRoot) || (podSC != nil && podSC.RunAsNonRoot != nil && *podSC.RunAsNonRoot)
		if !nonRoot {
			t.Errorf("%s/%s: runAsNonRoot is not true", d.Name, c.Name)
		}
		if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
			t.Errorf("%s/%s: allowPrivilegeEscalation is not false", d.Name, c.Name)
		}
		if sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) > 0 {
			t.Errorf("%s/%s: capabilities must drop ALL and add none, got %+v", d.Name, c.Name, sc.Capabilities)
		}
		seccomp := sc.SeccompProfile
		if seccomp == nil && podSC != nil {
			seccomp = podSC.SeccompProfile
		}
		if seccomp == nil || seccomp.Type != corev1.SeccompProfileTypeRuntimeDefault {
			t.Errorf("%s/%s: seccompProfile is not RuntimeDefault", d.Name, c.Name)
		}
		if c.Resources.Requests.Cpu().IsZero() && c.Resources.Requests.Memory().IsZero() {
			t.Errorf("%s/%s: no resource requests", d.Name, c.Name)
		}
		if c.Resources.Limits.Memory().IsZero() {
			t.Errorf("%s/%s: no memory limit", d.Name, c.Name)
		}
	}
}

// checkGateway asserts what only the gateway Deployment has: read-only root with a /tmp emptyDir,
// probes on the admin port, a termination grace that fits the drain, and the config checksum.
func checkGateway(t *testing.T, d *appsv1.Deployment) {
	t.Helper()
	pod := d.Spec.Template.Spec
	if len(pod.Containers) != 1 {
		t.Fatalf("gateway has %d containers, want 1", len(pod.Containers))
	}
	c := pod.Containers[0]
	if sc := c.SecurityContext; sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
		t.Error("gateway: readOnlyRootFilesystem is not true")
	}
	if sc := c.SecurityContext; sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot {
		t.Error("gateway: container runAsNonRoot is not true")
	}
	tmpVolume := ""
	for _, m := range c.VolumeMounts {
		if m.MountPath == "/tmp" {
			tmpVolume = m.Name
		}
	}
	hasEmptyDir := false
	for _, v := range pod.Volumes {
		if v.Name == tmpVolume && v.EmptyDir != nil {
			hasEmptyDir = true
		}
	}
	if !hasEmptyDir {
		t.Error("gateway: /tmp is not an emptyDir")
	}
	for name, p := range map[string]*corev1.Probe{"liveness": c.LivenessProbe, "readiness": c.ReadinessProbe} {
		want := map[string]string{"liveness": "/livez", "readiness": "/readyz"}[name]
		if p == nil || p.HTTPGet == nil || p.HTTPGet.Path != want || p.HTTPGet.Port.String() != "admin" {
			t.Errorf("gateway: %s probe must GET %s on the admin port, got %+v", name, want, p)
		}
	}
	if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() ||
		c.Resources.Limits.Cpu().IsZero() || c.Resources.Limits.Memory().IsZero() {
		t.Errorf("gateway: want cpu and memory requests and limits, got %+v", c.Resources)
	}
	const drain = 25 + 5 // shutdown.graceSeconds + preStopSleepSeconds defaults
	if pod.TerminationGracePeriodSeconds == nil || *pod.TerminationGracePeriodSeconds <= drain {
		t.Errorf("gateway: terminationGracePeriodSeconds must exceed %d", drain)
	}
	if c.Lifecycle == nil || c.Lifecycle.PreStop == nil || c.Lifecycle.PreStop.Sleep == nil || c.Lifecycle.PreStop.Sleep.Seconds != 5 {
		t.Errorf("gateway: want a 5s preStop sleep (the image has no shell), got %+v", c.Lifecycle)
	}
	if !strings.HasPrefix(c.Image, "ghcr.io/eventgate/eventgate:") {
		t.Errorf("gateway image = %q", c.Image)
	}
	if len(d.Spec.Template.Annotations["checksum/config"]) != 64 {
		t.Errorf("gateway: checksum/config annotation missing or not a sha256: %q", d.Spec.Template.Annotations["checksum/config"])
	}
}

func checkServices(t *testing.T, r *rendered) {
	t.Helper()
	want := map[string]int32{gatewayName: 8080, gatewayName + "-admin": 9090}
	for name, port := range want {
		s := named[*corev1.Service](r, name)
		if s == nil {
			t.Errorf("no Service %s", name)
			continue
		}
		if len(s.Spec.Ports) != 1 || s.Spec.Ports[0].Port != port {
			t.Errorf("Service %s ports = %+v, want %d", name, s.Spec.Ports, port)
		}
		if s.Spec.Selector["app.kubernetes.io/instance"] != "eg" {
			t.Errorf("Service %s selector = %v", name, s.Spec.Selector)
		}
	}
	checkAdminInside(t, r)
}

// checkAdminInside asserts that the admin port (the console, /tail, /redrives, /metrics) is reachable
// only inside the cluster: its Service is ClusterIP, no container publishes a host port and no pod
// uses the host's network.
func checkAdminInside(t *testing.T, r *rendered) {
	t.Helper()
	if s := named[*corev1.Service](r, gatewayName+"-admin"); s != nil && s.Spec.Type != "" && s.Spec.Type != corev1.ServiceTypeClusterIP {
		t.Errorf("admin Service type = %s, want ClusterIP", s.Spec.Type)
	}
	for _, d := range all[*appsv1.Deployment](r) {
		if d.Spec.Template.Spec.HostNetwork {
			t.Errorf("%s: hostNetwork", d.Name)
		}
		for _, c := range d.Spec.Template.Spec.Containers {
			for _, p := range c.Ports {
				if p.HostPort != 0 {
					t.Errorf("%s/%s: port %s published on host port %d", d.Name, c.Name, p.Name, p.HostPort)
				}
			}
		}
	}
}

// TestChartAdminPortStaysInside: exposing the ingress (a LoadBalancer) leaves the admin port
// cluster-internal, and the admin token is set as the README says, from an existing Secret.
func TestChartAdminPortStaysInside(t *testing.T) {
	helmBinary(t)
	r := render(t, "--set", "service.type=LoadBalancer", "--set", "secrets={eventgate-admin}",
		"--set", "config.admin.auth.secret=eventgate-admin")
	if s := named[*corev1.Service](r, gatewayName); s == nil || s.Spec.Type != corev1.ServiceTypeLoadBalancer {
		t.Fatalf("ingress Service = %+v, want a LoadBalancer", s)
	}
	checkAdminInside(t, r)
	cm := named[*corev1.ConfigMap](r, gatewayName)
	dir := t.TempDir()
	file := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(file, []byte(cm.Data["config.yaml"]), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, _, err := config.Load(config.Sources{File: file, Set: map[string]string{"secretsDir": dir}})
	if err != nil || cfg.Admin.Auth.Secret != "eventgate-admin" {
		t.Fatalf("admin.auth.secret = %q, %v", cfg.Admin.Auth.Secret, err)
	}
	mounted := false
	for _, m := range named[*appsv1.Deployment](r, gatewayName).Spec.Template.Spec.Containers[0].VolumeMounts {
		mounted = mounted || m.MountPath == "/var/run/secrets/eventgate/eventgate-admin"
	}
	if !mounted {
		t.Error("the admin token's Secret is not mounted under the secrets directory")
	}
}

// checkConfigMap loads the rendered gateway configuration with the gateway's own loader and decodes
// the rendered manifests with the gateway's own decoder: the chart can only ship what eventgate takes.
func checkConfigMap(t *testing.T, r *rendered) {
	t.Helper()
	cm := named[*corev1.ConfigMap](r, gatewayName)
	if cm == nil {
		t.Fatal("no gateway ConfigMap")
	}
	dir := t.TempDir()
	file := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(file, []byte(cm.Data["config.yaml"]), 0o600); err != nil {
		t.Fatal(err)
	}
	// secretsDir must exist where the gateway starts; in the pod the Secrets are mounted there.
	cfg, _, err := config.Load(config.Sources{File: file, Set: map[string]string{"secretsDir": dir}})
	if err != nil {
		t.Fatalf("gateway rejects the chart's config.yaml: %v\n%s", err, cm.Data["config.yaml"])
	}
	if cfg.Ingress.Address != ":8080" || cfg.Admin.Address != ":9090" {
		t.Errorf("addresses = %s, %s", cfg.Ingress.Address, cfg.Admin.Address)
	}
	if cfg.IngressURL() != ingressSvc {
		t.Errorf("IngressURL = %s, want %s", cfg.IngressURL(), ingressSvc)
	}
	if cfg.Shutdown.Grace.Seconds() != 25 {
		t.Errorf("shutdown.grace = %v", cfg.Shutdown.Grace)
	}
	if _, err := resources.Decode("manifests.yaml", []byte(cm.Data["manifests.yaml"]),
		resources.Options{DefaultProvisioner: cfg.Channels.DefaultProvisioner}); err != nil {
		t.Errorf("gateway rejects the chart's manifests.yaml: %v\n%s", err, cm.Data["manifests.yaml"])
	}
}

// TestChartKafkaValues checks that brokers make Kafka the default provisioner and that the SASL
// password comes from a Secret, never from values.
func TestChartKafkaValues(t *testing.T) {
	r := render(t, "-f", ciValues(t, "kafka-values.yaml"))
	cm := named[*corev1.ConfigMap](r, gatewayName)
	dir := t.TempDir()
	file := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(file, []byte(cm.Data["config.yaml"]), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, _, err := config.Load(config.Sources{File: file})
	if err == nil || !strings.Contains(err.Error(), "secretsDir") {
		t.Errorf("with secrets in values the config must name secretsDir (a mounted directory), got err=%v", err)
	}
	cfg, _, err = config.Load(config.Sources{File: file, Set: map[string]string{"secretsDir": dir}})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Channels.DefaultProvisioner != "kafka" || !slices.Equal(cfg.Kafka.Brokers, []string{"kafka-0.kafka:9092", "kafka-1.kafka:9092"}) {
		t.Errorf("kafka config = %+v, default provisioner %s", cfg.Kafka, cfg.Channels.DefaultProvisioner)
	}
	if cfg.Dispatch.MaxInFlight != 128 {
		t.Errorf("config value not merged: dispatch.maxInFlight = %d", cfg.Dispatch.MaxInFlight)
	}
	if cfg.Kafka.SASL.Password != "" || strings.Contains(cm.Data["config.yaml"], "password") {
		t.Error("the SASL password must not be in the ConfigMap")
	}
	if !cfg.Kafka.TLS.Enabled || cfg.Kafka.TLS.CAFile != "/var/run/secrets/eventgate-kafka-tls/ca.crt" {
		t.Errorf("kafka tls = %+v", cfg.Kafka.TLS)
	}
	gw := named[*appsv1.Deployment](r, gatewayName)
	var pw *corev1.EnvVar
	for i, e := range gw.Spec.Template.Spec.Containers[0].Env {
		if e.Name == "EVENTGATE_KAFKA__SASL__PASSWORD" {
			pw = &gw.Spec.Template.Spec.Containers[0].Env[i]
		}
	}
	if pw == nil || pw.ValueFrom == nil || pw.ValueFrom.SecretKeyRef == nil || pw.ValueFrom.SecretKeyRef.Name != "kafka-user" {
		t.Errorf("SASL password env = %+v, want a secretKeyRef to kafka-user", pw)
	}
	mounts := map[string]string{}
	for _, m := range gw.Spec.Template.Spec.Containers[0].VolumeMounts {
		mounts[m.MountPath] = m.Name
	}
	if _, ok := mounts["/var/run/secrets/eventgate/github"]; !ok {
		t.Errorf("secret github not mounted at the secrets directory; mounts %v", mounts)
	}
	if gw.Spec.Replicas != nil {
		t.Error("with autoscaling enabled the Deployment must leave replicas to the HPA")
	}
	if len(all[*rbacv1.Role](r)) != 0 {
		t.Error("no Kubernetes source, no rbac.create: no Role expected")
	}
}

// TestChartNATSValues checks that servers make NATS the default provisioner, that the token comes
// from a Secret (never from values) and that the TLS files are mounted where the config says.
func TestChartNATSValues(t *testing.T) {
	r := render(t, "-f", ciValues(t, "nats-values.yaml"))
	cm := named[*corev1.ConfigMap](r, gatewayName)
	file := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(file, []byte(cm.Data["config.yaml"]), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, _, err := config.Load(config.Sources{File: file})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Channels.DefaultProvisioner != "nats" || !slices.Equal(cfg.NATS.Servers, []string{"tls://nats-0.nats:4222", "tls://nats-1.nats:4222"}) {
		t.Errorf("nats servers = %v, default provisioner %s", cfg.NATS.Servers, cfg.Channels.DefaultProvisioner)
	}
	if cfg.NATS.Replicas != 3 || cfg.NATS.DefaultPartitions != 3 {
		t.Errorf("nats replicas = %d, defaultPartitions = %d", cfg.NATS.Replicas, cfg.NATS.DefaultPartitions)
	}
	if cfg.NATS.Token != "" || strings.Contains(cm.Data["config.yaml"], "token") {
		t.Error("the NATS token must not be in the ConfigMap")
	}
	tls := cfg.NATS.TLS
	if !tls.Enabled || tls.CAFile != "/var/run/secrets/eventgate-nats-tls/ca.crt" ||
		tls.CertFile != "/var/run/secrets/eventgate-nats-tls/tls.crt" || tls.KeyFile != "/var/run/secrets/eventgate-nats-tls/tls.key" {
		t.Errorf("nats tls = %+v", tls)
	}
	c := named[*appsv1.Deployment](r, gatewayName).Spec.Template.Spec
	env := map[string]corev1.EnvVar{}
	for _, e := range c.Containers[0].Env {
		env[e.Name] = e
	}
	if ref := env["EVENTGATE_NATS__TOKEN"].ValueFrom; ref == nil || ref.SecretKeyRef == nil ||
		ref.SecretKeyRef.Name != "nats-auth" || ref.SecretKeyRef.Key != "token" {
		t.Errorf("EVENTGATE_NATS__TOKEN = %+v, want a secretKeyRef to nats-auth/token", env["EVENTGATE_NATS__TOKEN"])
	}
	if _, ok := env["EVENTGATE_NATS__PASSWORD"]; ok {
		t.Error("token authentication: no password variable expected")
	}
	mounts := map[string]string{}
	for _, m := range c.Containers[0].VolumeMounts {
		mounts[m.MountPath] = m.Name
	}
	secrets := map[string]string{}
	for _, v := range c.Volumes {
		if v.Secret != nil {
			secrets[v.Name] = v.Secret.SecretName
		}
	}
	if name := mounts["/var/run/secrets/eventgate-nats-tls"]; name == "" || secrets[name] != "nats-tls" {
		t.Errorf("nats-tls Secret not mounted at the TLS directory; mounts %v, secret volumes %v", mounts, secrets)
	}
	if _, ok := mounts["/var/run/secrets/eventgate-nats-auth"]; ok {
		t.Error("a token is an environment variable: the auth Secret need not be mounted")
	}
}

// TestChartNATSCredentialFiles checks that a credentials file or an NKey seed comes from the auth
// Secret, mounted where nats.credsFile/nats.nkeySeedFile point, and that a password goes with a user.
func TestChartNATSCredentialFiles(t *testing.T) {
	base := []string{"--set", "nats.servers={nats://nats:4222}", "--set", "nats.auth.existingSecret=nats-user"}
	for _, c := range []struct {
		set, key, file string
	}{
		{"nats.auth.credsKey=user.creds", "credsFile", "/var/run/secrets/eventgate-nats-auth/user.creds"},
		{"nats.auth.nkeySeedKey=seed.nk", "nkeySeedFile", "/var/run/secrets/eventgate-nats-auth/seed.nk"},
	} {
		t.Run(c.key, func(t *testing.T) {
			r := render(t, append(slices.Clone(base), "--set", c.set)...)
			cm := named[*corev1.ConfigMap](r, gatewayName)
			if !strings.Contains(cm.Data["config.yaml"], c.key+": "+c.file) {
				t.Errorf("config.yaml lacks %s: %s\n%s", c.key, c.file, cm.Data["config.yaml"])
			}
			spec := named[*appsv1.Deployment](r, gatewayName).Spec.Template.Spec
			var mounted bool
			for _, m := range spec.Containers[0].VolumeMounts {
				mounted = mounted || m.MountPath == "/var/run/secrets/eventgate-nats-auth"
			}
			var fromSecret bool
			for _, v := range spec.Volumes {
				fromSecret = fromSecret || (v.Secret != nil && v.Secret.SecretName == "nats-user")
			}
			if !mounted || !fromSecret {
				t.Errorf("auth Secret nats-user mounted = %v, volume = %v", mounted, fromSecret)
			}
		})
	}
	t.Run("password", func(t *testing.T) {
		r := render(t, append(slices.Clone(base), "--set", "nats.auth.username=eventgate", "--set", "nats.auth.passwordKey=password")...)
		cm := named[*corev1.ConfigMap](r, gatewayName)
		if !strings.Contains(cm.Data["config.yaml"], "username: eventgate") || strings.Contains(cm.Data["config.yaml"], "password") {
			t.Errorf("config.yaml must name the user and not the password:\n%s", cm.Data["config.yaml"])
		}
		var pw *corev1.EnvVar
		for i, e := range named[*appsv1.Deployment](r, gatewayName).Spec.Template.Spec.Containers[0].Env {
			if e.Name == "EVENTGATE_NATS__PASSWORD" {
				pw = &named[*appsv1.Deployment](r, gatewayName).Spec.Template.Spec.Containers[0].Env[i]
			}
		}
		if pw == nil || pw.ValueFrom == nil || pw.ValueFrom.SecretKeyRef == nil || pw.ValueFrom.SecretKeyRef.Key != "password" {
			t.Errorf("EVENTGATE_NATS__PASSWORD = %+v, want a secretKeyRef to nats-user/password", pw)
		}
	})
	t.Run("kafka stays the default", func(t *testing.T) {
		r := render(t, "--set", "nats.servers={nats://nats:4222}", "--set", "kafka.brokers={kafka:9092}")
		cm := named[*corev1.ConfigMap](r, gatewayName)
		if !strings.Contains(cm.Data["config.yaml"], "defaultProvisioner: kafka") || !strings.Contains(cm.Data["config.yaml"], "nats://nats:4222") {
			t.Errorf("with both, Kafka stays the default and NATS is configured:\n%s", cm.Data["config.yaml"])
		}
	})
}

// TestChartChecksumFollowsManifests: a change to the manifests changes the pods' checksum annotation
// (so the pods roll), and the same values render the same checksum.
func TestChartChecksumFollowsManifests(t *testing.T) {
	checksum := func(args ...string) string {
		d := named[*appsv1.Deployment](render(t, args...), gatewayName)
		return d.Spec.Template.Annotations["checksum/config"]
	}
	ch := func(name string) string {
		return `manifests=[{"apiVersion":"messaging.knative.dev/v1","kind":"InMemoryChannel","metadata":{"name":"` + name + `"}}]`
	}
	a1, a2, b := checksum("--set-json", ch("a")), checksum("--set-json", ch("a")), checksum("--set-json", ch("b"))
	if a1 != a2 {
		t.Errorf("same values, different checksums: %s %s", a1, a2)
	}
	if a1 == b {
		t.Errorf("manifests changed but the checksum did not: %s", a1)
	}
	if c := checksum("--set-json", `config={"dispatch":{"retry":7}}`); c == checksum() {
		t.Error("config changed but the checksum did not")
	}
}

// TestChartRBACForKubernetesSources: the seed's KubernetesEventSource (namespace default) and an
// ApiServerSource in shop get Roles with exactly what they read, bound to the gateway's account.
func TestChartRBACForKubernetesSources(t *testing.T) {
	r := render(t, "-f", ciValues(t, "kubernetes-source-values.yaml"))
	roles := map[string]*rbacv1.Role{}
	for _, role := range all[*rbacv1.Role](r) {
		roles[role.Namespace] = role
	}
	want := map[string][]rbacv1.PolicyRule{
		"default": {{APIGroups: []string{""}, Resources: []string{"events"}, Verbs: []string{"get", "list", "watch"}}},
		"shop": {
			{APIGroups: []string{""}, Resources: []string{"events", "pods"}, Verbs: []string{"get", "list", "watch"}},
			{APIGroups: []string{"networking.k8s.io"}, Resources: []string{"ingresses"}, Verbs: []string{"get", "list", "watch"}},
		},
	}
	if len(roles) != len(want) {
		t.Fatalf("Roles in namespaces %v, want %v", keys(roles), keys(want))
	}
	for ns, rules := range want {
		role := roles[ns]
		if role == nil {
			t.Errorf("no Role in %s", ns)
			continue
		}
		if !equalJSON(role.Rules, rules) {
			t.Errorf("Role in %s rules = %+v, want %+v", ns, role.Rules, rules)
		}
	}
	bindings := all[*rbacv1.RoleBinding](r)
	if len(bindings) != 2 {
		t.Fatalf("%d RoleBindings, want 2", len(bindings))
	}
	for _, b := range bindings {
		if b.RoleRef.Kind != "Role" || b.RoleRef.Name != roles[b.Namespace].Name {
			t.Errorf("RoleBinding %s/%s refers to %+v", b.Namespace, b.Name, b.RoleRef)
		}
		if len(b.Subjects) != 1 || b.Subjects[0].Kind != "ServiceAccount" || b.Subjects[0].Name != gatewayName || b.Subjects[0].Namespace != releaseNamespace {
			t.Errorf("RoleBinding %s/%s subjects = %+v", b.Namespace, b.Name, b.Subjects)
		}
	}
	gw := named[*appsv1.Deployment](r, gatewayName)
	if at := gw.Spec.Template.Spec.AutomountServiceAccountToken; at == nil || !*at {
		t.Error("a Kubernetes source needs the API token mounted")
	}
	if len(all[*rbacv1.ClusterRole](r)) != 0 {
		t.Error("no ClusterRole expected without rbac.clusterWide")
	}

	// Without sources there is no RBAC and no token; rbac.clusterWide turns Roles into one ClusterRole.
	plain := render(t)
	if len(all[*rbacv1.Role](plain))+len(all[*rbacv1.ClusterRole](plain)) != 0 {
		t.Error("default values must not render RBAC")
	}
	if at := named[*appsv1.Deployment](plain, gatewayName).Spec.Template.Spec.AutomountServiceAccountToken; at == nil || *at {
		t.Error("without Kubernetes sources the API token must not be mounted")
	}
	cw := render(t, "-f", ciValues(t, "kubernetes-source-values.yaml"), "--set", "rbac.clusterWide=true")
	crs := all[*rbacv1.ClusterRole](cw)
	if len(crs) != 1 || len(all[*rbacv1.Role](cw)) != 0 || len(all[*rbacv1.ClusterRoleBinding](cw)) != 1 {
		t.Fatalf("clusterWide: %d ClusterRoles, %d Roles", len(crs), len(all[*rbacv1.Role](cw)))
	}
	if !equalJSON(crs[0].Rules, want["shop"]) {
		t.Errorf("ClusterRole rules = %+v", crs[0].Rules)
	}
	forced := render(t, "--set", "rbac.create=true")
	if len(all[*rbacv1.ClusterRole](forced)) != 1 {
		t.Error("rbac.create with no namespaces must grant events cluster-wide")
	}
	forcedNS := render(t, "--set", "rbac.create=true", "--set", "rbac.namespaces={team-a}")
	if rs := all[*rbacv1.Role](forcedNS); len(rs) != 1 || rs[0].Namespace != "team-a" {
		t.Errorf("rbac.namespaces={team-a}: Roles %+v", rs)
	}
}

// TestChartContainerSources: each ContainerSource is its own Deployment whose containers get K_SINK
// (the ingress Service for a channel or broker sink, the uri, or a reference's address with its
// relative uri), K_CA_CERTS (the sink's CACerts, replacing the manifest's own) and K_CE_OVERRIDES.
func TestChartContainerSources(t *testing.T) {
	r := render(t, "-f", ciValues(t, "containersource-values.yaml"))
	deps := all[*appsv1.Deployment](r)
	if len(deps) != 5 {
		t.Fatalf("%d Deployments, want the gateway and 4 ContainerSources", len(deps))
	}
	cases := map[string]struct {
		sink, overrides, caCerts string
		extraEnv                 []string
	}{
		"eg-eventgate-heartbeat": {sink: ingressSvc + "/shop/orders", overrides: `{"extensions":{"origin":"heartbeat"}}`, extraEnv: []string{"POD_NAME"}},
		"eg-eventgate-pinger":    {sink: "http://collector.default.svc.cluster.local/ping"},
		"eg-eventgate-audit": {sink: "http://collector.ops.svc.cluster.local/audit",
			caCerts: exampleCA},
		"eg-eventgate-ticker": {sink: ingressSvc + "/shop/hub"},
	}
	for name, want := range cases {
		d := named[*appsv1.Deployment](r, name)
		if d == nil {
			t.Errorf("no Deployment %s", name)
			continue
		}
		env := map[string]string{}
		for _, e := range d.Spec.Template.Spec.Containers[0].Env {
			env[e.Name] = e.Value
		}
		if env["K_SINK"] != want.sink {
			t.Errorf("%s: K_SINK = %q, want %q", name, env["K_SINK"], want.sink)
		}
		if env["K_CA_CERTS"] != want.caCerts {
			t.Errorf("%s: K_CA_CERTS = %q, want %q", name, env["K_CA_CERTS"], want.caCerts)
		}
		if env["K_CE_OVERRIDES"] != want.overrides {
			t.Errorf("%s: K_CE_OVERRIDES = %q, want %q", name, env["K_CE_OVERRIDES"], want.overrides)
		}
		for _, k := range want.extraEnv {
			if _, ok := env[k]; !ok {
				t.Errorf("%s: the manifest's env %s was lost", name, k)
			}
		}
		sel := d.Spec.Selector.MatchLabels
		for k, v := range sel {
			if d.Spec.Template.Labels[k] != v {
				t.Errorf("%s: selector %s=%s does not match the pod labels", name, k, v)
			}
		}
		if sel["app.kubernetes.io/name"] == "eventgate" {
			t.Errorf("%s: selector would also match the gateway pods", name)
		}
	}
}

// TestChartServiceMonitor: rendered when enabled and the monitoring.coreos.com/v1 API is there.
func TestChartServiceMonitor(t *testing.T) {
	values := ciValues(t, "servicemonitor-values.yaml")
	on := render(t, append(slices.Clone(withCRDs), "-f", values)...)
	sms := all[*serviceMonitor](on)
	if len(sms) != 1 {
		t.Fatalf("%d ServiceMonitors, want 1", len(sms))
	}
	sm := sms[0]
	if sm.Labels["release"] != "prometheus" || len(sm.Spec.Endpoints) != 1 || sm.Spec.Endpoints[0].Port != "admin" || sm.Spec.Endpoints[0].Path != "/metrics" {
		t.Errorf("ServiceMonitor = %+v", sm)
	}
	admin := named[*corev1.Service](on, gatewayName+"-admin")
	for k, v := range sm.Spec.Selector.MatchLabels {
		if admin.Labels[k] != v {
			t.Errorf("ServiceMonitor selects %s=%s, admin Service has %q", k, v, admin.Labels[k])
		}
	}
	if got := len(all[*serviceMonitor](render(t, withCRDs...))); got != 0 {
		t.Errorf("not enabled: %d ServiceMonitors, want 0", got)
	}
	// The same values also ship the dashboard, byte for byte the one in deploy/.
	dash := named[*corev1.ConfigMap](on, gatewayName+"-dashboard")
	if dash == nil || dash.Labels["grafana_dashboard"] != "1" {
		t.Fatalf("dashboard ConfigMap missing or unlabelled: %+v", dash)
	}
	want, err := os.ReadFile(filepath.Join(repoRoot(t), "deploy", "grafana", "dashboards", "eventgate.json"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(dash.Data["eventgate.json"]) != strings.TrimSpace(string(want)) {
		t.Error("the chart's dashboard differs from deploy/grafana/dashboards/eventgate.json: copy it to charts/eventgate/files/eventgate-dashboard.json")
	}
}

// TestChartServiceMonitorAPIForms is the regression test for a ServiceMonitor that rendered only when
// the API was reported kind-qualified (monitoring.coreos.com/v1/ServiceMonitor), as Helm does against a
// live cluster, and silently not at all for the group/version form GitOps tools pass.
func TestChartServiceMonitorAPIForms(t *testing.T) {
	values := ciValues(t, "servicemonitor-values.yaml")
	for _, api := range []string{"monitoring.coreos.com/v1", "monitoring.coreos.com/v1/ServiceMonitor"} {
		if got := len(all[*serviceMonitor](render(t, "-f", values, "--api-versions", api))); got != 1 {
			t.Errorf("--api-versions %s: %d ServiceMonitors, want 1", api, got)
		}
	}
	// Enabled without the API: an error that says what is missing and how to fix it, never an empty render.
	for _, api := range [][]string{nil, {"--api-versions", "monitoring.coreos.com/v1alpha1"}} {
		_, err := helmTemplate(t, append([]string{"-f", values}, api...)...)
		if err == nil {
			t.Errorf("enabled with %v: rendered without the monitoring.coreos.com/v1 API, want an error", api)
			continue
		}
		for _, want := range []string{"serviceMonitor.enabled", "monitoring.coreos.com/v1", "--api-versions"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("enabled with %v: error does not mention %q:\n%v", api, want, err)
			}
		}
	}
}

// TestChartKEDA: one Kafka trigger per Subscription, on its consumer group and its channel's topic.
func TestChartKEDA(t *testing.T) {
	r := render(t, append(slices.Clone(withCRDs), "-f", ciValues(t, "keda-values.yaml"))...)
	sos := all[*scaledObject](r)
	if len(sos) != 1 {
		t.Fatalf("%d ScaledObjects, want 1", len(sos))
	}
	so := sos[0]
	if so.Spec.ScaleTargetRef.Name != gatewayName || so.Spec.MaxReplicaCount != 6 {
		t.Errorf("ScaledObject spec = %+v", so.Spec)
	}
	groups := map[string]map[string]string{}
	for _, tr := range so.Spec.Triggers {
		if tr.Type != "kafka" {
			t.Errorf("trigger type %q", tr.Type)
		}
		groups[tr.Metadata["consumerGroup"]] = tr.Metadata
	}
	for _, g := range []string{"eventgate.shop.fulfilment", "eventgate.shop.billing"} {
		md, ok := groups[g]
		if !ok {
			t.Errorf("no trigger for group %s; have %v", g, keys(groups))
			continue
		}
		if md["topic"] != "eventgate.shop.orders" || md["bootstrapServers"] != "kafka:9092" || md["lagThreshold"] != "100" {
			t.Errorf("trigger %s metadata = %v", g, md)
		}
	}
	if len(groups) != 2 {
		t.Errorf("%d triggers, want 2", len(groups))
	}
	if named[*appsv1.Deployment](r, gatewayName).Spec.Replicas != nil {
		t.Error("with KEDA the Deployment must leave replicas to the ScaledObject")
	}
	if got := len(all[*scaledObject](render(t, withCRDs...))); got != 0 {
		t.Errorf("KEDA off by default, got %d ScaledObjects", got)
	}
}

// TestChartRefusesBadValues: the schema rejects wrong types and the templates reject a termination
// grace that cannot fit the drain.
func TestChartRefusesBadValues(t *testing.T) {
	helmBinary(t)
	cases := map[string]struct {
		args []string
		want string
	}{
		"replicaCount string": {[]string{"--set-string", "replicaCount=three"}, "replicaCount"},
		"unknown key":         {[]string{"--set", "replicas=3"}, "replicas"},
		"broker without port": {[]string{"--set", "kafka.brokers={kafka}"}, "brokers"},
		"grace too short":     {[]string{"--set", "terminationGracePeriodSeconds=20"}, "terminationGracePeriodSeconds"},
		"hpa and keda":        {[]string{"-f", ciValues(t, "keda-values.yaml"), "--set", "autoscaling.enabled=true"}, "enable one"},
		"keda without kafka":  {[]string{"--set", "keda.enabled=true"}, "set kafka.brokers"},
		"keda without subs":   {[]string{"--set", "keda.enabled=true", "--set", "kafka.brokers={k:9092}"}, "at least one Subscription"},
		"bad manifest yaml":   {[]string{"--set-json", `manifests=["kind: [unclosed"]`}, "not valid YAML"},
		"nats url scheme":     {[]string{"--set", "nats.servers={http://nats:4222}"}, "servers"},
		"nats two credentials": {[]string{"--set", "nats.servers={nats://n:4222}", "--set", "nats.auth.existingSecret=s",
			"--set", "nats.auth.tokenKey=t", "--set", "nats.auth.credsKey=c"}, "set one of"},
		"nats key without secret": {[]string{"--set", "nats.servers={nats://n:4222}", "--set", "nats.auth.tokenKey=t"}, "existingSecret"},
		"nats password without user": {[]string{"--set", "nats.servers={nats://n:4222}", "--set", "nats.auth.existingSecret=s",
			"--set", "nats.auth.passwordKey=p"}, "username"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := helmTemplate(t, c.args...)
			if err == nil {
				t.Fatalf("helm template %v succeeded", c.args)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("error does not mention %q: %v", c.want, err)
			}
		})
	}
	// The values file from scripts/chart-test's check, as a file.
	f := filepath.Join(t.TempDir(), "bad-values.yaml")
	if err := os.WriteFile(f, []byte("replicaCount: \"three\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := helmTemplate(t, "-f", f); err == nil || !strings.Contains(err.Error(), "replicaCount") {
		t.Errorf("replicaCount: \"three\" in a values file: err = %v", err)
	}
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func equalJSON(a, b any) bool {
	ja, err1 := json.Marshal(a)
	jb, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && string(ja) == string(jb)
}

// TestChartTracingValues: the tracing values become the gateway's tracing section, and the default
// values leave tracing off (no section: the gateway's defaults).
func TestChartTracingValues(t *testing.T) {
	load := func(r *rendered) config.Config {
		t.Helper()
		file := filepath.Join(t.TempDir(), "config.yaml")
		if err := os.WriteFile(file, []byte(named[*corev1.ConfigMap](r, gatewayName).Data["config.yaml"]), 0o600); err != nil {
			t.Fatal(err)
		}
		cfg, _, err := config.Load(config.Sources{File: file})
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	cfg := load(render(t, "-f", ciValues(t, "tracing-values.yaml")))
	want := tracing.Config{Endpoint: "http://otel-collector.observability:4318", Protocol: "http/protobuf",
		Sampling: 0.1, ServiceName: "eventgate-shop"}
	if cfg.Tracing != want {
		t.Errorf("tracing config = %+v, want %+v", cfg.Tracing, want)
	}
	if got := load(render(t)).Tracing; got != tracing.DefaultConfig() {
		t.Errorf("default values: tracing config = %+v, want the gateway's defaults (off)", got)
	}
}

// TestChartKubernetesMode: kubernetes.enabled grants least privilege, from the chart's CRDs: read
// and watch the kinds, write only their status, get (never list) Secrets and Services, the Lease in
// the release's namespace; the token is mounted and the config turns the mode on.
func TestChartKubernetesMode(t *testing.T) {
	r := render(t, "-f", ciValues(t, "kubernetes-mode-values.yaml"))
	if at := named[*appsv1.Deployment](r, gatewayName).Spec.Template.Spec.AutomountServiceAccountToken; at == nil || !*at {
		t.Error("the Kubernetes-native mode needs the API token mounted")
	}
	roles := map[string]*rbacv1.Role{}
	for _, role := range all[*rbacv1.Role](r) {
		roles[role.Namespace+"/"+role.Name] = role
	}
	lease := roles[releaseNamespace+"/"+gatewayName+"-status-lease"]
	if lease == nil || !equalJSON(lease.Rules, []rbacv1.PolicyRule{{APIGroups: []string{"coordination.k8s.io"},
		Resources: []string{"leases"}, Verbs: []string{"get", "create", "update"}}}) {
		t.Errorf("the Lease Role: %+v", lease)
	}
	for _, ns := range []string{"events", "team-a"} {
		role := roles[ns+"/"+gatewayName+"-resources"]
		if role == nil {
			t.Fatalf("no Role in %s (have %v)", ns, keys(roles))
		}
		sawStatus, sawSubscriptions := false, false
		for _, rule := range role.Rules {
			for _, res := range rule.Resources {
				writes := slices.ContainsFunc(rule.Verbs, func(v string) bool { return v != "get" && v != "list" && v != "watch" })
				if writes && !strings.HasSuffix(res, "/status") {
					t.Errorf("Role in %s writes %s (%v): only status may be written", ns, res, rule.Verbs)
				}
				if (res == "secrets" || res == "services") && !slices.Equal(rule.Verbs, []string{"get"}) {
					t.Errorf("Role in %s: %s %v, want get only", ns, res, rule.Verbs)
				}
				sawStatus = sawStatus || res == "subscriptions/status"
				sawSubscriptions = sawSubscriptions || (res == "subscriptions" && slices.Contains(rule.Verbs, "watch"))
			}
		}
		if !sawStatus || !sawSubscriptions {
			t.Errorf("Role in %s does not watch subscriptions and write their status: %+v", ns, role.Rules)
		}
	}
	cm := named[*corev1.ConfigMap](r, gatewayName)
	for _, want := range []string{"kubernetes: true", "managedOnly: true", "leaseNamespace: " + releaseNamespace} {
		if !strings.Contains(cm.Data["config.yaml"], want) {
			t.Errorf("config.yaml has no %q:\n%s", want, cm.Data["config.yaml"])
		}
	}
	// Every namespace: one ClusterRole instead.
	cw := render(t, "--set", "kubernetes.enabled=true")
	if crs := all[*rbacv1.ClusterRole](cw); len(crs) != 1 {
		t.Errorf("kubernetes.enabled for every namespace: %d ClusterRoles, want 1", len(crs))
	}
}

// exampleCA is the CACerts of the audit ContainerSource's sink in ci/containersource-values.yaml.
const exampleCA = `-----BEGIN CERTIFICATE-----
MIIBtjCCAVugAwIBAgIQSFdYzJfJQyNt8aKTDJ2ZkzAKBggqhkjOPQQDAjAdMRsw
GQYDVQQDExJleGFtcGxlIHByaXZhdGUgQ0EwHhcNMjYwMTAxMDAwMDAwWhcNMzYw
MTAxMDAwMDAwWjAdMRswGQYDVQQDExJleGFtcGxlIHByaXZhdGUgQ0EwWTATBgcq
hkjOPQIBBggqhkjOPQMBBwNCAATIZLWAaT2x8hDBHwvPI87C1NYgzu+ArPxXNyuK
5PHJaLbuBu/0+iTui1h99ShOVIrdTpYH2P33NXS0OKkKuQeco30wezAOBgNVHQ8B
Af8EBAMCAoQwHQYDVR0lBBYwFAYIKwYBBQUHAwEGCCsGAQUFBwMCMA8GA1UdEwEB
/wQFMAMBAf8wHQYDVR0OBBYEFJE5CBfgLChO+hk1LialFIx6Mep7MBoGA1UdEQQT
MBGCCWxvY2FsaG9zdIcEfwAAATAKBggqhkjOPQQDAgNJADBGAiEA16U578AUfh4F
RVpdai7scGaRpF3/U+T6GTAYis/I0qECIQCJYEmGH6zHSIotmimX1rNqGozmO3I+
1iSZAUMGFOxMeA==
-----END CERTIFICATE-----
`
