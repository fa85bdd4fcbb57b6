package deploytest

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
	"gopkg.in/yaml.v3"

	"github.com/eventgate/eventgate/gateway/config"
	"github.com/eventgate/eventgate/gateway/resources"
)

// loadCompose loads the top-level docker-compose.yml and any override files (paths from the root),
// with no profile enabled.
func loadCompose(t *testing.T, overrides ...string) *types.Project {
	t.Helper()
	return loadComposeProfiles(t, nil, overrides...)
}

// loadComposeProfiles is loadCompose with the given profiles enabled.
func loadComposeProfiles(t *testing.T, profiles []string, overrides ...string) *types.Project {
	t.Helper()
	root := repoRoot(t)
	files := []string{filepath.Join(root, "docker-compose.yml")}
	for _, o := range overrides {
		files = append(files, filepath.Join(root, o))
	}
	opts, err := cli.NewProjectOptions(files,
		cli.WithWorkingDirectory(root),
		cli.WithEnv([]string{}), // the test must not depend on the caller's environment
		cli.WithInterpolation(true),
		cli.WithNormalization(true),
		cli.WithConsistency(true),
		cli.WithResolvedPaths(true),
		cli.WithProfiles(profiles),
	)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p, err := opts.LoadProject(ctx)
	if err != nil {
		t.Fatalf("compose-go rejects docker-compose.yml: %v", err)
	}
	return p
}

// TestComposeProject loads docker-compose.yml with compose-go (no engine) and checks the services,
// their health checks and start order, and that what they mount exists and is what eventgate takes.
func TestComposeProject(t *testing.T) {
	p := loadCompose(t)
	root := repoRoot(t)
	want := []string{"display", "eventgate", "grafana", "kafka", "prometheus"}
	if got := p.ServiceNames(); !slices.Equal(sorted(got), want) {
		t.Fatalf("services = %v, want %v", got, want)
	}
	svc := func(name string) types.ServiceConfig {
		s, err := p.GetService(name)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}

	kafka := svc("kafka")
	if !strings.HasPrefix(kafka.Image, "apache/kafka:") {
		t.Errorf("kafka image = %q, want the official apache/kafka", kafka.Image)
	}
	if roles := kafka.Environment["KAFKA_PROCESS_ROLES"]; roles == nil || !strings.Contains(*roles, "controller") {
		t.Error("kafka must run in KRaft mode (KAFKA_PROCESS_ROLES with controller)")
	}

	// Every service_healthy dependency has a health check to wait for; every dependency exists.
	for _, s := range p.Services {
		for dep, cond := range s.DependsOn {
			target, err := p.GetService(dep)
			if err != nil {
				t.Errorf("%s depends on unknown %s", s.Name, dep)
				continue
			}
			if cond.Condition == types.ServiceConditionHealthy && (target.HealthCheck == nil || target.HealthCheck.Disable || len(target.HealthCheck.Test) == 0) {
				t.Errorf("%s waits for %s to be healthy, which has no health check", s.Name, dep)
			}
		}
	}
	wantDeps := map[string]map[string]string{
		"eventgate":  {"kafka": types.ServiceConditionHealthy, "display": types.ServiceConditionStarted},
		"prometheus": {"eventgate": types.ServiceConditionHealthy},
		"grafana":    {"prometheus": types.ServiceConditionHealthy},
	}
	for name, deps := range wantDeps {
		s := svc(name)
		for dep, cond := range deps {
			if s.DependsOn[dep].Condition != cond {
				t.Errorf("%s depends_on %s: condition %q, want %q", name, dep, s.DependsOn[dep].Condition, cond)
			}
		}
	}
	for _, name := range []string{"kafka", "eventgate", "prometheus", "grafana"} {
		if hc := svc(name).HealthCheck; hc == nil || len(hc.Test) == 0 {
			t.Errorf("%s has no health check", name)
		}
	}

	// eventgate and display: built from this repository's Dockerfile, read-only. The image has no
	// shell: the gateway's health check is the binary itself, and display has none.
	for _, name := range []string{"eventgate", "display"} {
		s := svc(name)
		if s.Build == nil || s.Build.Context != root || s.Build.Dockerfile != "Dockerfile" {
			t.Errorf("%s build = %+v, want this repository's Dockerfile", name, s.Build)
		}
		if !s.ReadOnly {
			t.Errorf("%s should run with a read-only root filesystem", name)
		}
	}
	if hc := svc("eventgate").HealthCheck; hc == nil || !slices.Equal([]string(hc.Test), []string{"CMD", "/eventgate", "healthcheck"}) {
		t.Errorf("eventgate health check = %+v, want the binary's own healthcheck (no shell in the image)", hc)
	}
	if hc := svc("display").HealthCheck; hc != nil && !hc.Disable && len(hc.Test) > 0 && hc.Test[0] == "CMD-SHELL" {
		t.Errorf("display has a shell health check, but its image has no shell")
	}
	display := svc("display")
	if !slices.Equal([]string(display.Command), []string{"display", "--address", ":8081"}) {
		t.Errorf("display command = %v", display.Command)
	}

	// The gateway's config and manifests, as mounted, load with the gateway's own loaders.
	eg := svc("eventgate")
	mounts := map[string]string{}
	for _, v := range p.Services["eventgate"].Volumes {
		mounts[v.Target] = v.Source
	}
	for _, s := range p.Services {
		for _, v := range s.Volumes {
			if v.Type == types.VolumeTypeBind {
				if _, err := os.Stat(v.Source); err != nil {
					t.Errorf("%s mounts %s, which does not exist", s.Name, v.Source)
				}
			}
		}
	}
	src := mounts["/etc/eventgate"]
	if src != filepath.Join(root, "examples", "compose") {
		t.Fatalf("eventgate mounts %q at /etc/eventgate, want examples/compose", src)
	}
	args := []string(eg.Command)
	cfgPath := flagValue(args, "--config")
	resPath := flagValue(args, "-f")
	if !strings.HasPrefix(cfgPath, "/etc/eventgate/") || !strings.HasPrefix(resPath, "/etc/eventgate/") {
		t.Fatalf("eventgate command %v: want --config and -f under /etc/eventgate", args)
	}
	hostPath := func(p string) string { return filepath.Join(src, strings.TrimPrefix(p, "/etc/eventgate/")) }
	cfg, _, err := config.Load(config.Sources{File: hostPath(cfgPath)})
	if err != nil {
		t.Fatalf("gateway rejects the compose config: %v", err)
	}
	if !slices.Equal(cfg.Kafka.Brokers, []string{"kafka:9092"}) || cfg.Channels.DefaultProvisioner != "kafka" {
		t.Errorf("compose config: brokers %v, provisioner %s", cfg.Kafka.Brokers, cfg.Channels.DefaultProvisioner)
	}
	set, err := resources.Load([]string{hostPath(resPath)}, resources.Options{DefaultProvisioner: cfg.Channels.DefaultProvisioner})
	if err != nil {
		t.Fatalf("gateway rejects the compose manifests: %v", err)
	}
	if len(set.Channels) == 0 || len(set.Subscriptions) == 0 {
		t.Errorf("compose manifests: %d channels, %d subscriptions", len(set.Channels), len(set.Subscriptions))
	}
	if got := cfg.AddressBook["default/display"]; got != "http://display:8081" {
		t.Errorf("address book sends the demo subscription to %q, want the display service on :8081", got)
	}
	ports := map[uint32]bool{}
	for _, pc := range eg.Ports {
		ports[pc.Target] = true
	}
	if !ports[8080] || !ports[9090] {
		t.Errorf("eventgate publishes %v, want 8080 and 9090", eg.Ports)
	}

	// Prometheus reads deploy/prometheus.yml; Grafana gets the provisioning and the dashboard.
	prom := map[string]string{}
	for _, v := range p.Services["prometheus"].Volumes {
		prom[v.Target] = v.Source
	}
	if prom["/etc/prometheus/prometheus.yml"] != filepath.Join(root, "deploy", "prometheus.yml") {
		t.Errorf("prometheus mounts %v", prom)
	}
	graf := map[string]string{}
	for _, v := range p.Services["grafana"].Volumes {
		graf[v.Target] = v.Source
	}
	dashDir := graf["/var/lib/grafana/dashboards"]
	if _, err := os.Stat(filepath.Join(dashDir, "eventgate.json")); err != nil {
		t.Errorf("grafana dashboards mount: %v", err)
	}
	provDir := graf["/etc/grafana/provisioning"]
	var provider struct {
		Providers []struct {
			Options struct {
				Path string `yaml:"path"`
			} `yaml:"options"`
		} `yaml:"providers"`
	}
	readYAML(t, filepath.Join(provDir, "dashboards", "eventgate.yml"), &provider, false)
	if len(provider.Providers) != 1 || provider.Providers[0].Options.Path != "/var/lib/grafana/dashboards" {
		t.Errorf("grafana dashboard provider = %+v, want path /var/lib/grafana/dashboards", provider)
	}
	var ds struct {
		Datasources []struct {
			Type string `yaml:"type"`
			URL  string `yaml:"url"`
		} `yaml:"datasources"`
	}
	readYAML(t, filepath.Join(provDir, "datasources", "prometheus.yml"), &ds, false)
	if len(ds.Datasources) != 1 || ds.Datasources[0].Type != "prometheus" || ds.Datasources[0].URL != "http://prometheus:9090" {
		t.Errorf("grafana data source = %+v", ds)
	}
}

// TestComposeNATSProfile loads docker-compose.yml with the nats profile: a NATS server with JetStream
// on a volume, health-checked, and a second gateway that waits for it, whose mounted config and
// manifests load with the gateway's own loaders and put the demo channel on NATS. Without the profile
// neither service runs (TestComposeProject).
func TestComposeNATSProfile(t *testing.T) {
	p := loadComposeProfiles(t, []string{"nats"})
	root := repoRoot(t)
	want := []string{"display", "eventgate", "eventgate-nats", "grafana", "kafka", "nats", "prometheus"}
	if got := p.ServiceNames(); !slices.Equal(sorted(got), want) {
		t.Fatalf("services with the nats profile = %v, want %v", got, want)
	}
	n, err := p.GetService("nats")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(n.Image, "nats:") || !slices.Contains([]string(n.Command), "-js") {
		t.Errorf("nats service: image %q command %v, want the official image with JetStream (-js)", n.Image, n.Command)
	}
	if sd := flagValue(n.Command, "-sd"); sd == "" || !slices.ContainsFunc(n.Volumes, func(v types.ServiceVolumeConfig) bool {
		return v.Type == types.VolumeTypeVolume && v.Target == sd
	}) {
		t.Errorf("nats stores JetStream in %q, which should be a named volume (volumes %+v)", sd, n.Volumes)
	}
	if n.HealthCheck == nil || len(n.HealthCheck.Test) == 0 || !strings.Contains(strings.Join(n.HealthCheck.Test, " "), "js-enabled-only") {
		t.Errorf("nats health check = %+v, want /healthz?js-enabled-only=true", n.HealthCheck)
	}
	eg, err := p.GetService("eventgate-nats")
	if err != nil {
		t.Fatal(err)
	}
	if eg.DependsOn["nats"].Condition != types.ServiceConditionHealthy {
		t.Errorf("eventgate-nats depends_on nats: %+v, want service_healthy", eg.DependsOn["nats"])
	}
	if hc := eg.HealthCheck; hc == nil || !slices.Equal([]string(hc.Test), []string{"CMD", "/eventgate", "healthcheck"}) {
		t.Errorf("eventgate-nats health check = %+v", hc)
	}
	if eg.Build == nil || eg.Build.Context != root || !eg.ReadOnly {
		t.Errorf("eventgate-nats: build %+v, read-only %v", eg.Build, eg.ReadOnly)
	}
	src := ""
	for _, v := range eg.Volumes {
		if v.Target == "/etc/eventgate" {
			src = v.Source
		}
	}
	if src != filepath.Join(root, "examples", "compose", "nats") {
		t.Fatalf("eventgate-nats mounts %q at /etc/eventgate, want examples/compose/nats", src)
	}
	hostPath := func(p string) string { return filepath.Join(src, strings.TrimPrefix(p, "/etc/eventgate/")) }
	cfg, _, err := config.Load(config.Sources{File: hostPath(flagValue(eg.Command, "--config"))})
	if err != nil {
		t.Fatalf("gateway rejects the nats compose config: %v", err)
	}
	if cfg.Channels.DefaultProvisioner != "nats" || !slices.Equal(cfg.NATS.Servers, []string{"nats://nats:4222"}) {
		t.Errorf("nats compose config: servers %v, provisioner %s", cfg.NATS.Servers, cfg.Channels.DefaultProvisioner)
	}
	set, err := resources.Load([]string{hostPath(flagValue(eg.Command, "-f"))}, resources.Options{DefaultProvisioner: cfg.Channels.DefaultProvisioner})
	if err != nil {
		t.Fatalf("gateway rejects the nats compose manifests: %v", err)
	}
	if len(set.Channels) != 1 || len(set.Subscriptions) != 1 {
		t.Fatalf("nats compose manifests: %d channels, %d subscriptions", len(set.Channels), len(set.Subscriptions))
	}
	for _, ch := range set.Channels {
		if ch.Provisioner != "nats" {
			t.Errorf("channel %s is on %q, want nats", ch.Ref(), ch.Provisioner)
		}
	}
	if got := cfg.AddressBook["default/display"]; got != "http://display:8081" {
		t.Errorf("address book sends the demo subscription to %q", got)
	}
	published := map[string]bool{}
	for _, s := range p.Services {
		for _, pc := range s.Ports {
			key := pc.HostIP + ":" + pc.Published
			if published[key] {
				t.Errorf("host port %s published twice", key)
			}
			published[key] = true
		}
	}
}

// TestPrometheusConfig decodes deploy/prometheus.yml (plain YAML into a small struct, unknown keys
// refused; the prometheus/prometheus module is too heavy to import for this) and checks that it scrapes
// the gateway's admin port under the compose service name.
func TestPrometheusConfig(t *testing.T) {
	type staticConfig struct {
		Targets []string          `yaml:"targets"`
		Labels  map[string]string `yaml:"labels"`
	}
	var cfg struct {
		Global struct {
			ScrapeInterval     string `yaml:"scrape_interval"`
			EvaluationInterval string `yaml:"evaluation_interval"`
		} `yaml:"global"`
		ScrapeConfigs []struct {
			JobName       string         `yaml:"job_name"`
			MetricsPath   string         `yaml:"metrics_path"`
			StaticConfigs []staticConfig `yaml:"static_configs"`
		} `yaml:"scrape_configs"`
	}
	readYAML(t, filepath.Join(repoRoot(t), "deploy", "prometheus.yml"), &cfg, true)
	if _, err := time.ParseDuration(cfg.Global.ScrapeInterval); err != nil {
		t.Errorf("global.scrape_interval: %v", err)
	}
	found := false
	for _, sc := range cfg.ScrapeConfigs {
		if sc.JobName != "eventgate" {
			continue
		}
		found = true
		if sc.MetricsPath != "" && sc.MetricsPath != "/metrics" {
			t.Errorf("metrics_path = %q", sc.MetricsPath)
		}
		if len(sc.StaticConfigs) != 1 || !slices.Equal(sc.StaticConfigs[0].Targets, []string{"eventgate:9090"}) {
			t.Errorf("eventgate targets = %+v, want eventgate:9090 (compose service, admin port)", sc.StaticConfigs)
		}
	}
	if !found {
		t.Error("no scrape job named eventgate (the dashboard's $job variable expects it)")
	}
	p := loadCompose(t)
	if _, err := p.GetService("eventgate"); err != nil {
		t.Errorf("the scrape target names a service compose does not have: %v", err)
	}
}

// readYAML decodes a YAML file into v; with strict, keys v does not have fail.
func readYAML(t *testing.T, path string, v any, strict bool) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	dec := yaml.NewDecoder(f)
	dec.KnownFields(strict)
	if err := dec.Decode(v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

func flagValue(args []string, name string) string {
	for i, a := range args {
		if a == name && i+1 < len(args) {
			return args[i+1]
		}
		if v, ok := strings.CutPrefix(a, name+"="); ok {
			return v
		}
	}
	return ""
}

func sorted(s []string) []string {
	out := slices.Clone(s)
	slices.Sort(out)
	return out
}

// TestComposeTracingProfile: the tracing profile adds Jaeger with the UI on loopback, and the
// gateways take their OTLP endpoint from OTEL_EXPORTER_OTLP_ENDPOINT: empty (tracing off) unless the
// caller names one.
func TestComposeTracingProfile(t *testing.T) {
	p := loadComposeProfiles(t, []string{"tracing"})
	if !slices.Contains(p.ServiceNames(), "jaeger") {
		t.Fatalf("services with the tracing profile = %v, want jaeger among them", p.ServiceNames())
	}
	j, err := p.GetService("jaeger")
	if err != nil {
		t.Fatal(err)
	}
	ui := false
	for _, pc := range j.Ports {
		ui = ui || (pc.Target == 16686 && pc.HostIP == "127.0.0.1")
	}
	if !strings.Contains(j.Image, "jaeger") || !ui || !slices.Contains(j.Expose, "4317") {
		t.Errorf("jaeger: image %q ports %+v expose %v; want the UI on 127.0.0.1:16686 and OTLP gRPC exposed", j.Image, j.Ports, j.Expose)
	}
	if slices.Contains(loadCompose(t).ServiceNames(), "jaeger") {
		t.Error("jaeger runs without the tracing profile")
	}
	eg, err := p.GetService("eventgate")
	if err != nil {
		t.Fatal(err)
	}
	if v, ok := eg.Environment["OTEL_EXPORTER_OTLP_ENDPOINT"]; !ok || v == nil || *v != "" {
		t.Errorf("eventgate OTEL_EXPORTER_OTLP_ENDPOINT = %v, want present and empty (tracing off) without the caller's", v)
	}
}
