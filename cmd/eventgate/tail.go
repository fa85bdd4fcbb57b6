package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	neturl "net/url"
	"os"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"github.com/eventgate/eventgate/internal/app"
)

func newTailCmd() *cobra.Command {
	var (
		admin, token, from, typ, expr, output string
		maxData                               int
	)
	cmd := &cobra.Command{
		Use:   "tail NAMESPACE/NAME",
		Short: "Print a channel's or broker's events as they pass, without consuming them",
		Long: `tail follows a channel (or broker) of a running gateway (GET /tail/NAMESPACE/NAME on its admin port) and prints
each event as it is published: its place in the channel (partition/offset), attributes, extensions
and data (text as text, anything else as base64, cut at --max-data bytes with the full size shown).
A tail is an observer: it joins no subscription's group and moves no offset. It runs until
interrupted.

--from says where to begin: latest (the default: events published from now on), earliest (what the
channel still holds; in memory that is only what a subscription has not consumed yet), an RFC 3339
time, or a duration before now such as 10m. The admin token (admin.auth.secret) is read from --token
or EVENTGATE_ADMIN_TOKEN.`,
		Example: `  eventgate tail default/orders
  eventgate tail default/orders --from 10m --type com.example.order.created
  eventgate tail default/orders --filter "INT(amount) >= 1000"
  eventgate tail default/orders --output json | jq .attributes.id`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ns, name, ok := strings.Cut(args[0], "/")
			if !ok || ns == "" || name == "" || strings.Contains(name, "/") {
				return &exitError{code: 2, err: fmt.Errorf("%q: want NAMESPACE/NAME", args[0])}
			}
			if output != "text" && output != "json" {
				return &exitError{code: 2, err: fmt.Errorf("--output %q: want text or json", output)}
			}
			q := neturl.Values{}
			for k, v := range map[string]string{"from": from, "type": typ, "filter": expr} {
				if v != "" {
					q.Set(k, v)
				}
			}
			q.Set("maxData", fmt.Sprint(maxData))
			url := strings.TrimSuffix(admin, "/") + "/tail/" + neturl.PathEscape(ns) + "/" + neturl.PathEscape(name) + "?" + q.Encode()
			req, err := http.NewRequestWithContext(contextOf(cmd), http.MethodGet, url, nil)
			if err != nil {
				return &exitError{code: 2, err: fmt.Errorf("--admin: %w", err)}
			}
			if token == "" {
				token = os.Getenv("EVENTGATE_ADMIN_TOKEN")
			}
			if token != "" {
				req.Header.Set("Authorization", "Bearer "+token)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				if contextOf(cmd).Err() != nil {
					return nil
				}
				var uerr *neturl.Error
				if errors.As(err, &uerr) {
					err = uerr.Err
				}
				return &exitError{code: 1, err: fmt.Errorf("tail: cannot reach the gateway's admin port at %s: %w", admin, err)}
			}
			defer resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
				return &exitError{code: 1, err: fmt.Errorf("tail: %s answered %s: %s", admin, resp.Status, strings.TrimSpace(string(body)))}
			}
			w := cmd.OutOrStdout()
			color := output == "text" && isTerminal(w)
			err = readTail(resp.Body, func(event string, data []byte) error {
				switch event {
				case "end":
					return fmt.Errorf("tail: the gateway ended the tail: %s", data)
				case "cloudevent":
				default:
					return nil
				}
				if output == "json" {
					_, err := fmt.Fprintf(w, "%s\n", data)
					return err
				}
				var te app.TailEvent
				if err := json.Unmarshal(data, &te); err != nil {
					return fmt.Errorf("tail: the gateway sent an event that is not one: %w", err)
				}
				_, err := io.WriteString(w, formatTailEvent(te, color))
				return err
			})
			if contextOf(cmd).Err() != nil {
				return nil // interrupted: the normal end
			}
			if err != nil {
				return &exitError{code: 1, err: err}
			}
			return &exitError{code: 1, err: errors.New("tail: the gateway closed the stream")}
		},
	}
	cmd.Flags().StringVar(&admin, "admin", "http://127.0.0.1:9090", "base URL of the gateway's admin port")
	cmd.Flags().StringVar(&token, "token", "", "admin bearer token (default $EVENTGATE_ADMIN_TOKEN)")
	cmd.Flags().StringVar(&from, "from", "latest", "where to begin: latest, earliest, an RFC 3339 time, or a duration before now (10m)")
	cmd.Flags().StringVar(&typ, "type", "", "only events of this type")
	cmd.Flags().StringVar(&expr, "filter", "", "only events this CESQL expression passes, e.g. \"source LIKE '/shop/%'\"")
	cmd.Flags().IntVar(&maxData, "max-data", 4096, "show at most this many bytes of each event's data")
	cmd.Flags().StringVarP(&output, "output", "o", "text", "output format: text (a block per event) or json (a line per event)")
	return cmd
}

// readTail calls fn with each message of an SSE stream (its event name and data) until the stream
// ends or fn fails. Comments are skipped.
func readTail(r io.Reader, fn func(event string, data []byte) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	var event string
	var data []byte
	for sc.Scan() {
		line := sc.Bytes()
		switch {
		case len(line) == 0:
			if data != nil {
				if err := fn(event, data); err != nil {
					return err
				}
			}
			event, data = "", nil
		case line[0] == ':':
		default:
			k, v, _ := strings.Cut(string(line), ":")
			v = strings.TrimPrefix(v, " ")
			switch k {
			case "event":
				event = v
			case "data":
				if data != nil {
					data = append(data, '\n')
				}
				data = append(data, v...)
			}
		}
	}
	return sc.Err()
}

// formatTailEvent is one event as `eventgate tail` prints it: a heading with the channel, place, type
// and id, then the other attributes, the extensions and the data.
func formatTailEvent(te app.TailEvent, color bool) string {
	bold, dim, reset := "", "", ""
	if color {
		bold, dim, reset = "\x1b[1m", "\x1b[2m", "\x1b[0m"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s%s %d/%d  %s  %s%s\n", bold, te.Channel, te.Partition, te.Offset, te.Attributes["type"], te.Attributes["id"], reset)
	if te.Skipped > 0 {
		fmt.Fprintf(&b, "  (%d events before this one were gone before the tail read them)\n", te.Skipped)
	}
	line := func(k, v string) { fmt.Fprintf(&b, "  %s%-16s%s %s\n", dim, k, reset, v) }
	for _, k := range []string{"source", "subject", "time", "datacontenttype", "dataschema"} {
		if v, ok := te.Attributes[k]; ok {
			line(k, v)
		}
	}
	names := make([]string, 0, len(te.Extensions))
	for k := range te.Extensions {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		line(k, te.Extensions[k])
	}
	cut := ""
	if te.DataTruncated {
		cut = fmt.Sprintf(" (first bytes of %d)", te.DataSize)
	}
	switch {
	case te.Data != "":
		fmt.Fprintf(&b, "  %sdata%s%s\n    %s\n", dim, reset, cut, strings.ReplaceAll(te.Data, "\n", "\n    "))
	case te.DataBase64 != "":
		fmt.Fprintf(&b, "  %sdata (base64)%s%s\n    %s\n", dim, reset, cut, te.DataBase64)
	}
	return b.String() + "\n"
}
