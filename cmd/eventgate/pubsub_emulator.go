package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"cloud.google.com/go/pubsub/v2/pstest"
	"github.com/spf13/cobra"
)

func newPubSubEmulatorCmd() *cobra.Command {
	var addr string
	cmd := &cobra.Command{
		Use:   "pubsub-emulator",
		Short: "Serve an in-memory Google Cloud Pub/Sub emulator, for trying Pub/Sub channels locally",
		Long: `pubsub-emulator serves the Pub/Sub fake of the Go client library (pstest) until interrupted, so
that Pub/Sub channels can be tried without a Google Cloud project. It keeps everything in memory: a
restart forgets every topic, subscription and message. It is for development and tests only.

Point a gateway at it with PUBSUB_EMULATOR_HOST (any project ID will do).`,
		Example: `  eventgate pubsub-emulator &
  PUBSUB_EMULATOR_HOST=127.0.0.1:8085 GOOGLE_CLOUD_PROJECT=local eventgate serve -f examples/pubsub`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			srv, err := startPubSubEmulator(addr)
			if err != nil {
				return err
			}
			defer srv.Close()
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			fmt.Fprintf(cmd.OutOrStdout(), "pubsub emulator listening on %s (in memory; PUBSUB_EMULATOR_HOST=%s)\n", srv.Addr, srv.Addr)
			<-ctx.Done()
			return nil
		},
	}
	cmd.Flags().StringVar(&addr, "address", "127.0.0.1:8085", "host:port to serve on (port 0: any free port)")
	return cmd
}

// startPubSubEmulator starts pstest on addr. pstest panics when it cannot listen; that becomes an
// error naming the address.
func startPubSubEmulator(addr string) (srv *pstest.Server, err error) {
	defer func() {
		if r := recover(); r != nil {
			srv, err = nil, fmt.Errorf("pubsub-emulator: cannot serve on %s: %v", addr, r)
		}
	}()
	return pstest.NewServerWithAddress(addr), nil
}
