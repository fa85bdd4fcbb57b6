package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/eventgate/eventgate/gateway/config"
	"github.com/eventgate/eventgate/gateway/metrics"
	"github.com/eventgate/eventgate/internal/app"
)

// configFlags are the flags every command that reads configuration shares.
type configFlags struct {
	file       string
	resources  []string
	set        []string
	secretsDir string
}

func (f *configFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.file, "config", "", "YAML configuration file")
	cmd.Flags().StringArrayVarP(&f.resources, "resources", "f", nil, "manifest file or directory (repeatable)")
	cmd.Flags().StringArrayVar(&f.set, "set", nil, "override one configuration key, e.g. --set kafka.brokers=127.0.0.1:9092 (repeatable)")
	cmd.Flags().StringVar(&f.secretsDir, "secrets-dir", "", "directory of secrets laid out as Kubernetes mounts them (DIR/NAME/KEY)")
}

func (f *configFlags) load() (config.Config, []string, error) {
	set := map[string]string{}
	for _, kv := range f.set {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return config.Config{}, nil, fmt.Errorf("--set %q: want KEY=VALUE", kv)
		}
		set[k] = v
	}
	if f.secretsDir != "" {
		set["secretsDir"] = f.secretsDir
	}
	return config.Load(config.Sources{File: f.file, Environ: os.Environ(), Set: set})
}

func newServeCmd() *cobra.Command {
	var (
		f             configFlags
		runContainers bool
		kubernetes    bool
	)
	cmd := &cobra.Command{
		Use:   "serve [-f PATH]...",
		Short: "Run the gateway: ingress, channels, subscriptions and sources",
		Long: `serve runs the gateway. It loads the manifests given with -f (files or directories), creates
their channels, starts a dispatcher per subscription and serves CloudEvents at the ingress
(default :8080, POST /NAMESPACE/CHANNEL) and metrics and health at the admin port (default :9090).
The manifests are watched: changes apply without a restart, and a broken file is refused while the
last good set keeps running. With no configuration at all, channels live in memory.

Configuration layers, later wins: defaults, --config FILE, EVENTGATE_* environment variables
(__ nests: EVENTGATE_KAFKA__BROKERS=127.0.0.1:9092), then --set flags. SIGTERM drains and exits 0.`,
		Example: `  eventgate serve -f examples/quickstart
  eventgate serve --config eventgate.yaml -f manifests/ --secrets-dir /var/run/secrets/eventgate
  EVENTGATE_KAFKA__BROKERS=127.0.0.1:9092 eventgate serve -f manifests/ --set channels.defaultProvisioner=kafka
  eventgate serve --kubernetes --set ingress.externalURL=http://eventgate.events.svc.cluster.local`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if kubernetes {
				f.set = append(f.set, "resources.kubernetes=true")
			}
			cfg, warnings, err := f.load()
			if err != nil {
				return &exitError{code: 2, err: err}
			}
			log := newLogger(cfg.Log, os.Stderr)
			for _, w := range warnings {
				log.Warn(w)
			}
			v, c, g := buildInfo()
			a, err := app.New(app.Options{
				Config: cfg, Paths: f.resources, Log: log,
				Build:               metrics.Build{Version: v, Commit: c, GoVersion: g},
				RunContainerSources: runContainers,
				Ready: func(in, admin string) {
					fmt.Fprintf(cmd.OutOrStdout(), "eventgate %s: ingress on %s (POST /NAMESPACE/CHANNEL), admin on %s (/metrics /livez /readyz)\n", v, in, admin)
				},
			})
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGTERM, os.Interrupt)
			defer stop()
			return a.Run(ctx)
		},
	}
	f.register(cmd)
	cmd.Flags().BoolVar(&kubernetes, "kubernetes", false, "also run the managed kinds' objects of the Kubernetes cluster and write their status (resources.kubernetes)")
	cmd.Flags().BoolVar(&runContainers, "run-container-sources", false, "run each ContainerSource's program as a child process (K_SINK set to its sink)")
	return cmd
}

// newLogger returns the process logger: text on a terminal, JSON otherwise (or as configured).
func newLogger(c config.Log, w *os.File) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(c.Level))
	opts := &slog.HandlerOptions{Level: level}
	format := c.Format
	if format == "auto" {
		format = "json"
		if st, err := w.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			format = "text"
		}
	}
	if format == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

// contextOf keeps cobra's context, or Background when it has none.
func contextOf(cmd *cobra.Command) context.Context {
	if ctx := cmd.Context(); ctx != nil {
		return ctx
	}
	return context.Background()
}
