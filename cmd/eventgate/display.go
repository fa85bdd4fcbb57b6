package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/eventgate/eventgate/gateway/event"
)

func newDisplayCmd() *cobra.Command {
	var (
		port   int
		addr   string
		asJSON bool
		status int
	)
	cmd := &cobra.Command{
		Use:   "display",
		Short: "Run a subscriber that prints every CloudEvent it receives",
		Long: `display is a tiny CloudEvents subscriber for trying eventgate out — the demo service of
Knative's eventing walkthrough, as a command. It listens on --port, prints each event it receives
(attributes, extensions and data, JSON pretty-printed) and answers --status (default 202). With
--json it prints one JSON object per line instead, for scripts.`,
		Example: `  eventgate display --port 8081
  eventgate display --port 8081 --json | jq .type`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if addr == "" {
				addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
			}
			ln, err := net.Listen("tcp", addr)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			var mu sync.Mutex
			n := 0
			srv := &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.Method != http.MethodPost {
					w.Header().Set("Allow", "POST")
					http.Error(w, "POST CloudEvents here", http.StatusMethodNotAllowed)
					return
				}
				body, err := io.ReadAll(io.LimitReader(r.Body, 16<<20))
				if err != nil {
					http.Error(w, err.Error(), http.StatusBadRequest)
					return
				}
				events, err := event.ParseHTTP(r.Header, body)
				if err != nil {
					http.Error(w, err.Error(), http.StatusBadRequest)
					return
				}
				mu.Lock()
				for _, ev := range events {
					n++
					if asJSON {
						writeJSONLine(out, ev)
					} else {
						writeEvent(out, n, ev)
					}
				}
				mu.Unlock()
				w.WriteHeader(status)
			})}
			fmt.Fprintf(cmd.ErrOrStderr(), "display: listening on http://%s\n", ln.Addr())
			ctx, stop := signal.NotifyContext(contextOf(cmd), syscall.SIGTERM, syscall.SIGINT)
			defer stop()
			go func() {
				<-ctx.Done()
				shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				srv.Shutdown(shutdown)
			}()
			if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
				return err
			}
			return nil
		},
	}
	cmd.Flags().IntVar(&port, "port", 8081, "port to listen on (127.0.0.1)")
	cmd.Flags().StringVar(&addr, "address", "", "host:port to listen on, overriding --port (e.g. :8081 for every interface)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print one JSON object per event")
	cmd.Flags().IntVar(&status, "status", http.StatusAccepted, "HTTP status to answer with")
	return cmd
}

// writeEvent prints an event for people: one attribute per line, then the data.
func writeEvent(w io.Writer, n int, ev *event.Event) {
	var b strings.Builder
	fmt.Fprintf(&b, "── event %d, received %s\n", n, time.Now().Format(time.RFC3339))
	row := func(k, v string) {
		if v != "" {
			fmt.Fprintf(&b, "  %-16s %s\n", k+":", v)
		}
	}
	row("type", ev.Type)
	row("source", ev.Source)
	row("id", ev.ID)
	row("time", ev.Time)
	row("subject", ev.Subject)
	row("datacontenttype", ev.DataContentType)
	row("dataschema", ev.DataSchema)
	for _, k := range ev.ExtensionNames() {
		row(k, ev.Extensions[k])
	}
	if len(ev.Data) > 0 {
		fmt.Fprintf(&b, "  data (%d bytes):\n", len(ev.Data))
		var pretty bytes.Buffer
		switch {
		case json.Indent(&pretty, ev.Data, "    ", "  ") == nil:
			b.WriteString("    " + pretty.String() + "\n")
		case utf8.Valid(ev.Data):
			b.WriteString("    " + strings.ReplaceAll(strings.TrimRight(string(ev.Data), "\n"), "\n", "\n    ") + "\n")
		default:
			fmt.Fprintf(&b, "    (%d bytes of binary data)\n", len(ev.Data))
		}
	}
	io.WriteString(w, b.String())
}

// writeJSONLine prints an event as one structured-mode JSON line.
func writeJSONLine(w io.Writer, ev *event.Event) {
	b, err := event.MarshalStructured(ev)
	if err != nil {
		fmt.Fprintf(w, "{\"error\":%q}\n", err.Error())
		return
	}
	w.Write(append(bytes.TrimSpace(b), '\n'))
}
