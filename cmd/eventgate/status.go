package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	neturl "net/url"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/eventgate/eventgate/internal/app"
)

func newStatusCmd() *cobra.Command {
	var (
		admin   string
		output  string
		timeout time.Duration
	)
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Print every channel, subscription and source of a running gateway, with its Ready state",
		Long: `status asks a running gateway's admin port (GET /status) for every resource it runs and prints
them as tables, like kubectl get: channels with their backend, partitions and the address to POST
to; subscriptions with their lag, current concurrency limit and last delivery error; sources with
whether they run, their last event and last error. READY and REASON are each resource's Ready
condition; what is not ready is listed at the end with the reason in full. Ages are measured on the
gateway's clock. --output json prints the endpoint's JSON as it is.`,
		Example: `  eventgate status
  eventgate status --admin http://gateway.internal:9090
  eventgate status --output json | jq '.subscriptions[] | {name, lag, lastError}'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if output != "table" && output != "json" {
				return &exitError{code: 2, err: fmt.Errorf("--output %q: want table or json", output)}
			}
			url := strings.TrimSuffix(admin, "/") + "/status"
			req, err := http.NewRequestWithContext(contextOf(cmd), http.MethodGet, url, nil)
			if err != nil {
				return &exitError{code: 2, err: fmt.Errorf("--admin: %w", err)}
			}
			resp, err := (&http.Client{Timeout: timeout}).Do(req)
			if err != nil {
				var uerr *neturl.Error
				if errors.As(err, &uerr) {
					err = uerr.Err // the URL is named once, below
				}
				return &exitError{code: 1, err: fmt.Errorf("status: cannot reach the gateway's admin port at %s: %w", url, err)}
			}
			defer resp.Body.Close()
			body, err := io.ReadAll(io.LimitReader(resp.Body, 32<<20))
			if err != nil {
				return &exitError{code: 1, err: fmt.Errorf("status: reading %s: %w", url, err)}
			}
			if resp.StatusCode != http.StatusOK {
				return &exitError{code: 1, err: fmt.Errorf("status: %s answered %s: %s", url, resp.Status, strings.TrimSpace(string(body)))}
			}
			if output == "json" {
				_, err := cmd.OutOrStdout().Write(body)
				return err
			}
			var st app.Status
			if err := json.Unmarshal(body, &st); err != nil {
				return &exitError{code: 1, err: fmt.Errorf("status: %s did not answer with a gateway status: %w", url, err)}
			}
			return writeStatusTable(cmd.OutOrStdout(), st)
		},
	}
	cmd.Flags().StringVar(&admin, "admin", "http://127.0.0.1:9090", "base URL of the gateway's admin port")
	cmd.Flags().StringVarP(&output, "output", "o", "table", "output format: table or json")
	cmd.Flags().DurationVar(&timeout, "timeout", 10*time.Second, "give up after this long")
	return cmd
}

// writeStatusTable prints st as kubectl-style tables: one section per category, then what is not
// ready, in full. Ages are measured from st.Time.
func writeStatusTable(w io.Writer, st app.Status) error {
	tw := tabwriter.NewWriter(w, 0, 8, 3, ' ', 0)
	age := func(t time.Time) string {
		if t.IsZero() {
			return "-"
		}
		return humanAge(st.Time.Sub(t))
	}
	ready := func(r app.ReadyState) string {
		if r.Ready {
			return "True"
		}
		return "False"
	}
	dash := func(s string) string {
		if s == "" {
			return "-"
		}
		return s
	}
	lastError := func(msg string, at time.Time) string {
		switch {
		case msg == "":
			return "-"
		case at.IsZero():
			return truncate(msg, 60)
		}
		return truncate(msg, 60) + " (" + age(at) + " ago)"
	}
	row := func(cols ...string) { fmt.Fprintln(tw, strings.Join(cols, "\t")) }

	row("CHANNELS")
	row("NAME", "READY", "REASON", "BACKEND", "PARTITIONS", "ADDRESS")
	for _, c := range st.Channels {
		row(c.Namespace+"/"+c.Name, ready(c.ReadyState), dash(c.Reason), c.Backend, strconv.Itoa(int(c.Partitions)), c.Address)
	}
	if len(st.Channels) == 0 {
		row("(none)")
	}
	row("")
	row("SUBSCRIPTIONS")
	row("NAME", "READY", "REASON", "CHANNEL", "LAG", "LIMIT", "LAST DELIVERY", "LAST ERROR")
	for _, s := range st.Subscriptions {
		lag := "-"
		if s.Lag != nil {
			lag = strconv.FormatInt(*s.Lag, 10)
		}
		limit := "-"
		if s.ConcurrencyLimit > 0 {
			limit = strconv.Itoa(s.ConcurrencyLimit)
		}
		row(s.Namespace+"/"+s.Name, ready(s.ReadyState), dash(s.Reason), s.Channel, lag, limit,
			agoOrDash(age(s.LastDeliveryTime)), lastError(s.LastError, s.LastErrorTime))
	}
	if len(st.Subscriptions) == 0 {
		row("(none)")
	}
	if len(st.Brokers) > 0 {
		row("")
		row("BROKERS")
		row("NAME", "READY", "REASON", "BACKEND", "PARTITIONS", "ADDRESS")
		for _, c := range st.Brokers {
			row(c.Namespace+"/"+c.Name, ready(c.ReadyState), dash(c.Reason), c.Backend, strconv.Itoa(int(c.Partitions)), c.Address)
		}
	}
	if len(st.Triggers) > 0 {
		row("")
		row("TRIGGERS")
		row("NAME", "READY", "REASON", "BROKER", "LAG", "LIMIT", "LAST DELIVERY", "LAST ERROR")
		for _, s := range st.Triggers {
			lag := "-"
			if s.Lag != nil {
				lag = strconv.FormatInt(*s.Lag, 10)
			}
			limit := "-"
			if s.ConcurrencyLimit > 0 {
				limit = strconv.Itoa(s.ConcurrencyLimit)
			}
			row(s.Namespace+"/"+s.Name, ready(s.ReadyState), dash(s.Reason), s.Channel, lag, limit,
				agoOrDash(age(s.LastDeliveryTime)), lastError(s.LastError, s.LastErrorTime))
		}
	}
	row("")
	row("SOURCES")
	row("NAME", "READY", "REASON", "KIND", "RUNNING", "LAST EVENT", "LAST ERROR")
	for _, s := range st.Sources {
		row(s.Namespace+"/"+s.Name, ready(s.ReadyState), dash(s.Reason), s.Kind, strconv.FormatBool(s.Running),
			agoOrDash(age(s.LastEventTime)), lastError(s.LastError, s.LastErrorTime))
	}
	if len(st.Sources) == 0 {
		row("(none)")
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(st.NotReady) > 0 {
		fmt.Fprintln(w, "\nNOT READY")
		for _, l := range st.NotReady {
			fmt.Fprintln(w, "  "+l)
		}
	}
	return nil
}

// agoOrDash turns an age into "5s ago", leaving "-" alone.
func agoOrDash(a string) string {
	if a == "-" {
		return a
	}
	return a + " ago"
}

// humanAge renders d as kubectl renders ages: 45s, 3m20s, 25m, 2h10m, 30h, 3d4h, 12d.
func humanAge(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	s := int64(d / time.Second)
	m, h := s/60, s/3600
	switch {
	case s < 120:
		return fmt.Sprintf("%ds", s)
	case m < 10:
		if s%60 == 0 {
			return fmt.Sprintf("%dm", m)
		}
		return fmt.Sprintf("%dm%ds", m, s%60)
	case h < 3:
		return fmt.Sprintf("%dm", m)
	case h < 8:
		if m%60 == 0 {
			return fmt.Sprintf("%dh", h)
		}
		return fmt.Sprintf("%dh%dm", h, m%60)
	case h < 48:
		return fmt.Sprintf("%dh", h)
	case h < 24*8:
		if h%24 == 0 {
			return fmt.Sprintf("%dd", h/24)
		}
		return fmt.Sprintf("%dd%dh", h/24, h%24)
	default:
		return fmt.Sprintf("%dd", h/24)
	}
}

// truncate shortens s to at most n runes, marking the cut with "…".
func truncate(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}
