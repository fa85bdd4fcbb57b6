package main

import (
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/spf13/cobra"
)

func newHealthcheckCmd() *cobra.Command {
	var (
		url     string
		timeout time.Duration
	)
	cmd := &cobra.Command{
		Use:   "healthcheck",
		Short: "Exit 0 when a gateway answers its readiness check, 1 otherwise",
		Long: `healthcheck asks a running gateway's admin port whether it is ready (GET /readyz) and exits 0
when it answers 200. The container image has no shell or curl; docker-compose and other
orchestrators without HTTP probes use this instead.`,
		Example: `  eventgate healthcheck
  eventgate healthcheck --url http://127.0.0.1:9090/livez`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			client := &http.Client{Timeout: timeout}
			resp, err := client.Get(url)
			if err != nil {
				return &exitError{code: 1, err: fmt.Errorf("healthcheck: %w", err)}
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
			if resp.StatusCode != http.StatusOK {
				return &exitError{code: 1, err: fmt.Errorf("healthcheck: %s: %s", resp.Status, body)}
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s", body)
			return nil
		},
	}
	cmd.Flags().StringVar(&url, "url", "http://127.0.0.1:9090/readyz", "readiness URL of the gateway's admin port")
	cmd.Flags().DurationVar(&timeout, "timeout", 3*time.Second, "give up after this long")
	return cmd
}
