package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	neturl "net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/eventgate/eventgate/gateway/redrive"
)

// redriveClient talks to the admin port's /redrives.
type redriveClient struct {
	admin, token string
	cmd          *cobra.Command
}

// do sends a request and decodes a JSON answer into out; a non-2xx answer is an error with the
// gateway's message.
func (c *redriveClient) do(method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(contextOf(c.cmd), method, strings.TrimSuffix(c.admin, "/")+path, rd)
	if err != nil {
		return &exitError{code: 2, err: fmt.Errorf("--admin: %w", err)}
	}
	req.Header.Set("Content-Type", "application/json")
	tok := c.token
	if tok == "" {
		tok = os.Getenv("EVENTGATE_ADMIN_TOKEN")
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		var uerr *neturl.Error
		if errors.As(err, &uerr) {
			err = uerr.Err
		}
		return &exitError{code: 1, err: fmt.Errorf("redrive: cannot reach the gateway's admin port at %s: %w", c.admin, err)}
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return &exitError{code: 1, err: fmt.Errorf("redrive: %s answered %s: %s", c.admin, resp.Status, strings.TrimSpace(string(b)))}
	}
	if err := json.Unmarshal(b, out); err != nil {
		return &exitError{code: 1, err: fmt.Errorf("redrive: the gateway's answer is not a job: %w", err)}
	}
	return nil
}

// formatRedrive is one line about a job.
func formatRedrive(st redrive.Status) string {
	s := fmt.Sprintf("%s  %-11s matched %d  sent %d  failed %d  remaining %d", st.ID, st.State, st.Matched,
		st.Sent, st.Failed, st.Remaining)
	if st.Request.DryRun {
		s += "  (dry run)"
	}
	if st.Error != "" {
		s += "  error: " + st.Error
	} else if st.LastError != "" {
		s += "  last error: " + st.LastError
	}
	return s + "\n"
}

// redriveExit is the exit status a finished job gives: 0 done with nothing failed, else 1.
func redriveExit(st redrive.Status) error {
	switch {
	case st.State == redrive.Done && st.Failed == 0:
		return nil
	case st.State == redrive.Done:
		return &exitError{code: 1, err: fmt.Errorf("redrive %s: %d events could not be sent (they stay in the dead-letter channel)", st.ID, st.Failed)}
	}
	return &exitError{code: 1, err: fmt.Errorf("redrive %s ended %s", st.ID, st.State)}
}

func newRedriveCmd() *cobra.Command {
	var (
		c                                        redriveClient
		from, to, expr, typ, since, rate, output string
		dryRun, wait                             bool
	)
	print := func(cmd *cobra.Command, st redrive.Status) error {
		if output == "json" {
			b, _ := json.Marshal(st)
			_, err := fmt.Fprintf(cmd.OutOrStdout(), "%s\n", b)
			return err
		}
		_, err := io.WriteString(cmd.OutOrStdout(), formatRedrive(st))
		return err
	}
	follow := func(cmd *cobra.Command, st redrive.Status) error {
		last := st
		for st.State == redrive.Running {
			select {
			case <-contextOf(cmd).Done():
				return nil // interrupted: the job runs on
			case <-time.After(500 * time.Millisecond):
			}
			if err := c.do(http.MethodGet, "/redrives/"+neturl.PathEscape(st.ID), nil, &st); err != nil {
				return err
			}
			if st.Progress != last.Progress || st.State != last.State {
				if err := print(cmd, st); err != nil {
					return err
				}
				last = st
			}
		}
		return redriveExit(st)
	}
	cmd := &cobra.Command{
		Use:   "redrive --from NAMESPACE/CHANNEL [--to NAMESPACE/SUBSCRIPTION] [--filter CESQL|--type TYPE] [--since TIME] [--rate N/s] [--dry-run] [--wait]",
		Short: "Send dead letters back to where they failed to go",
		Long: `redrive starts a job on a running gateway (POST /redrives on its admin port) that reads a dead-letter
channel or broker (NAMESPACE/NAME) and sends its events back, and prints the job's id at once.

By default each event goes back to the destination named in its knativeerrordest extension (the
subscriber URL, or the channel, that failed), with one attempt. With --to NAMESPACE/SUBSCRIPTION
every event goes to that subscription's subscriber as the subscription delivers: its retries and
backoff, its reply destination, and its dead-letter sink if it fails again (a trigger is
NAMESPACE/trigger.NAME).

What is sent is the event as it was (same id, source, type and data) without the knativeerrordest,
knativeerrorcode and knativeerrordata extensions, and with eventgateredrives counting the redrives
it went through (1, 2, …). The dead letters are never removed: the job reads the channel up to the
end it had when the job started and records how far it got. An event that fails again counts as
failed and stays where it was.

--filter (a CESQL expression) and --type select the events; --since reads only the dead letters
stored at or after a time (RFC 3339, or a duration before now such as 1h); --rate caps the events
sent per second (10 or 10/s); --dry-run counts what would be sent and sends nothing. --wait follows
the job until it ends (exit 1 if it did not send everything it matched).

The admin token (admin.auth.secret) is read from --token or EVENTGATE_ADMIN_TOKEN.`,
		Example: `  eventgate redrive --from default/dead-letters --dry-run --wait
  eventgate redrive --from default/dead-letters --type com.example.order.created --rate 50/s
  eventgate redrive --from default/dead-letters --filter "INT(knativeerrorcode) >= 500" --since 1h
  eventgate redrive --from default/dead-letters --to default/orders --wait
  eventgate redrive status rd-0123456789ab
  eventgate redrive cancel rd-0123456789ab
  eventgate redrive list`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c.cmd = cmd
			if from == "" {
				return &exitError{code: 2, err: errors.New("--from NAMESPACE/CHANNEL is required")}
			}
			if output != "text" && output != "json" {
				return &exitError{code: 2, err: fmt.Errorf("--output %q: want text or json", output)}
			}
			req := redrive.Request{From: from, To: to, Filter: expr, Type: typ, DryRun: dryRun}
			if since != "" {
				if t, err := time.Parse(time.RFC3339Nano, since); err == nil {
					req.Since = t
				} else if d, err := time.ParseDuration(since); err == nil && d > 0 {
					req.Since = time.Now().Add(-d)
				} else {
					return &exitError{code: 2, err: fmt.Errorf("--since %q: want an RFC 3339 time or a duration before now (1h)", since)}
				}
			}
			if rate != "" {
				n, err := strconv.ParseFloat(strings.TrimSuffix(rate, "/s"), 64)
				if err != nil || n <= 0 {
					return &exitError{code: 2, err: fmt.Errorf("--rate %q: want events per second, such as 10 or 10/s", rate)}
				}
				req.Rate = n
			}
			var st redrive.Status
			if err := c.do(http.MethodPost, "/redrives", req, &st); err != nil {
				return err
			}
			if err := print(cmd, st); err != nil {
				return err
			}
			if !wait {
				return nil
			}
			return follow(cmd, st)
		},
	}
	pf := cmd.PersistentFlags()
	pf.StringVar(&c.admin, "admin", "http://127.0.0.1:9090", "base URL of the gateway's admin port")
	pf.StringVar(&c.token, "token", "", "admin bearer token (default $EVENTGATE_ADMIN_TOKEN)")
	pf.StringVarP(&output, "output", "o", "text", "text or json (one job per line)")
	f := cmd.Flags()
	f.StringVar(&from, "from", "", "the dead-letter channel, NAMESPACE/NAME (required)")
	f.StringVar(&to, "to", "", "send every event to this subscription's subscriber, NAMESPACE/NAME (default: each event's knativeerrordest)")
	f.StringVar(&expr, "filter", "", "only events this CESQL expression passes")
	f.StringVar(&typ, "type", "", "only events of this type")
	f.StringVar(&since, "since", "", "only dead letters stored at or after this time (RFC 3339, or a duration before now: 1h)")
	f.StringVar(&rate, "rate", "", "at most this many events per second (10 or 10/s; default no cap)")
	f.BoolVar(&dryRun, "dry-run", false, "count what would be sent; send nothing")
	f.BoolVar(&wait, "wait", false, "follow the job until it ends")

	statusCmd := &cobra.Command{
		Use:   "status ID",
		Short: "Show a redrive job's progress (--wait: until it ends)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c.cmd = cmd
			var st redrive.Status
			if err := c.do(http.MethodGet, "/redrives/"+neturl.PathEscape(args[0]), nil, &st); err != nil {
				return err
			}
			if err := print(cmd, st); err != nil {
				return err
			}
			if wait {
				return follow(cmd, st)
			}
			return nil
		},
	}
	statusCmd.Flags().BoolVar(&wait, "wait", false, "follow the job until it ends")
	cancelCmd := &cobra.Command{
		Use:   "cancel ID",
		Short: "Stop a redrive job (the dead letters stay in their channel)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c.cmd = cmd
			var st redrive.Status
			if err := c.do(http.MethodDelete, "/redrives/"+neturl.PathEscape(args[0]), nil, &st); err != nil {
				return err
			}
			return print(cmd, st)
		},
	}
	listCmd := &cobra.Command{
		Use:   "list",
		Short: "List the gateway's redrive jobs, oldest first",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c.cmd = cmd
			var l struct {
				Jobs []redrive.Status `json:"jobs"`
			}
			if err := c.do(http.MethodGet, "/redrives", nil, &l); err != nil {
				return err
			}
			for _, st := range l.Jobs {
				if err := print(cmd, st); err != nil {
					return err
				}
			}
			return nil
		},
	}
	cmd.AddCommand(statusCmd, cancelCmd, listCmd)
	return cmd
}
