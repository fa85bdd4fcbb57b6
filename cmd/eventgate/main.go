// Command eventgate is a Kafka-native event gateway: Knative Eventing's Sources, Channels and
// Subscriptions as one binary. See `eventgate --help`.
package main

import (
	"fmt"
	"os"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// Set at build time: go build -ldflags "-X main.version=v1.2.3 -X main.commit=abc123".
var (
	version = "dev"
	commit  = ""
)

func main() {
	if err := newRoot().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "eventgate:", err)
		os.Exit(exitCode(err))
	}
}

// exitError carries a process exit code through cobra.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func exitCode(err error) int {
	if e, ok := err.(*exitError); ok { //nolint:errorlint // only ever returned unwrapped
		return e.code
	}
	return 1
}

func newRoot() *cobra.Command {
	root := &cobra.Command{
		Use:   "eventgate",
		Short: "A Kafka-native event gateway for Knative-style Channels and Subscriptions",
		Long: `eventgate runs Knative Eventing's model as one binary: channels (Kafka topics, or in memory),
subscriptions that deliver CloudEvents to HTTP services with retries, dead letters and replies,
and sources that produce into channels. It reads the Knative manifests you already have.`,
		Example: `  # run the gateway on the in-memory channel with the quickstart manifests
  eventgate serve -f examples/quickstart

  # print what each manifest resolves to
  eventgate validate -f examples/quickstart`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(newServeCmd(), newValidateCmd(), newSendCmd(), newDisplayCmd(), newVersionCmd(), newHealthcheckCmd(), newStatusCmd(), newTailCmd(), newRedriveCmd(), newBenchCmd())
	root.AddCommand(newPubSubEmulatorCmd())
	return root
}

// buildInfo returns version, commit and Go version, filling the commit from the Go build info when
// the binary was not stamped.
func buildInfo() (string, string, string) {
	c := commit
	if c == "" {
		if bi, ok := debug.ReadBuildInfo(); ok {
			for _, s := range bi.Settings {
				if s.Key == "vcs.revision" {
					c = s.Value
				}
			}
		}
	}
	if c == "" {
		c = "unknown"
	}
	return version, c, runtime.Version()
}

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "version",
		Short:   "Print eventgate's version, commit and Go version",
		Example: "  eventgate version",
		Args:    cobra.NoArgs,
		Run: func(cmd *cobra.Command, _ []string) {
			v, c, g := buildInfo()
			fmt.Fprintf(cmd.OutOrStdout(), "eventgate %s (commit %s, %s)\n", v, c, g)
		},
	}
}
