package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/spf13/cobra"

	"github.com/eventgate/eventgate/gateway/event"
)

type sendFlags struct {
	typ, source, id, data, mode, contentType, subject string
	extensions                                        []string
	timeout                                           time.Duration
}

func newSendCmd() *cobra.Command {
	var f sendFlags
	cmd := &cobra.Command{
		Use:   "send URL",
		Short: "POST one CloudEvent and print the answer",
		Long: `send posts one CloudEvent to URL (an eventgate channel, or any CloudEvents receiver) in binary
or structured mode and prints the HTTP status and body of the answer. It exits 1 unless the answer
is 2xx. --data takes text, @FILE for a file's contents, or - for standard input.`,
		Example: `  eventgate send http://127.0.0.1:8080/default/demo --type com.example.greeting --data 'Hello, Eventing'
  eventgate send http://127.0.0.1:8080/default/demo --data @order.json --content-type application/json --mode structured
  echo '{"n":1}' | eventgate send http://127.0.0.1:8080/default/demo --data - -e partitionkey=customer-7`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ev, err := f.event(cmd.InOrStdin())
			if err != nil {
				return &exitError{code: 2, err: err}
			}
			req, err := buildRequest(args[0], ev, f.mode)
			if err != nil {
				return &exitError{code: 2, err: err}
			}
			client := &http.Client{Timeout: f.timeout}
			resp, err := client.Do(req.WithContext(contextOf(cmd)))
			if err != nil {
				return fmt.Errorf("send: %w", err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "%s (id %s)\n", resp.Status, ev.ID)
			if len(body) > 0 {
				fmt.Fprintf(out, "%s", body)
				if !bytes.HasSuffix(body, []byte("\n")) {
					fmt.Fprintln(out)
				}
			}
			if resp.StatusCode/100 != 2 {
				return &exitError{code: 1, err: fmt.Errorf("send: answered %s", resp.Status)}
			}
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.typ, "type", "dev.eventgate.example", "the event's type")
	fl.StringVar(&f.source, "source", "/eventgate/send", "the event's source (URI-reference)")
	fl.StringVar(&f.id, "id", "", "the event's id (default: a new UUID)")
	fl.StringVar(&f.subject, "subject", "", "the event's subject")
	fl.StringVar(&f.data, "data", "", "data: text, @FILE, or - for standard input")
	fl.StringVar(&f.contentType, "content-type", "", "datacontenttype (default: application/json when the data is JSON, else text/plain)")
	fl.StringVar(&f.mode, "mode", "binary", "HTTP binding mode: binary or structured")
	fl.StringArrayVarP(&f.extensions, "extension", "e", nil, "extension attribute NAME=VALUE (repeatable)")
	fl.DurationVar(&f.timeout, "timeout", 30*time.Second, "give up after this long")
	return cmd
}

func (f *sendFlags) event(stdin io.Reader) (*event.Event, error) {
	data, err := readData(f.data, stdin)
	if err != nil {
		return nil, err
	}
	ev := &event.Event{
		ID: f.id, Source: f.source, SpecVersion: event.SpecVersion, Type: f.typ, Subject: f.subject,
		Time: time.Now().UTC().Format(time.RFC3339Nano), Data: data, DataContentType: f.contentType,
	}
	if ev.ID == "" {
		ev.ID = uuid.NewString()
	}
	if ev.DataContentType == "" && len(data) > 0 {
		ev.DataContentType = "text/plain"
		if jsonLike(data) {
			ev.DataContentType = "application/json"
		}
	}
	for _, kv := range f.extensions {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return nil, fmt.Errorf("--extension %q: want NAME=VALUE", kv)
		}
		ev.SetExtension(k, v)
	}
	if err := ev.Validate(); err != nil {
		return nil, err
	}
	return ev, nil
}

func readData(spec string, stdin io.Reader) ([]byte, error) {
	switch {
	case spec == "-":
		return io.ReadAll(stdin)
	case strings.HasPrefix(spec, "@"):
		b, err := os.ReadFile(spec[1:])
		if err != nil {
			return nil, fmt.Errorf("--data: %w", err)
		}
		return b, nil
	default:
		return []byte(spec), nil
	}
}

func jsonLike(b []byte) bool {
	t := bytes.TrimSpace(b)
	return len(t) > 0 && (t[0] == '{' || t[0] == '[') && json.Valid(t)
}

func buildRequest(url string, ev *event.Event, mode string) (*http.Request, error) {
	switch mode {
	case "binary":
		req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(ev.Data))
		if err != nil {
			return nil, err
		}
		event.WriteHTTPBinary(ev, req.Header)
		return req, nil
	case "structured":
		body, err := event.MarshalStructured(ev)
		if err != nil {
			return nil, err
		}
		req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
		if err != nil {
			return nil, err
		}
		req.Header.Set("Content-Type", "application/cloudevents+json; charset=utf-8")
		return req, nil
	default:
		return nil, errors.New("--mode: want binary or structured")
	}
}
