package app

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/eventgate/eventgate/gateway/channel"
	"github.com/eventgate/eventgate/gateway/filter"
)

// Tail's defaults: how much of an event's data an SSE message carries, and how often a quiet stream
// sends a comment so that proxies and clients see it alive.
const (
	tailMaxData   = 4096
	tailKeepalive = 15 * time.Second
)

// TailEvent is the data of one message of GET /tail/NAMESPACE/NAME (SSE event "cloudevent"). Field
// names are part of the interface: add, never rename.
type TailEvent struct {
	Channel   string `json:"channel"` // NAMESPACE/NAME
	Partition int32  `json:"partition"`
	Offset    int64  `json:"offset"`
	// Skipped is how many events of the partition the log dropped before the tail read them.
	Skipped int64 `json:"skipped,omitempty"`
	// Attributes are the event's context attributes (specversion, id, source, type, and those set of
	// datacontenttype, dataschema, subject, time); Extensions its extensions.
	Attributes map[string]string `json:"attributes"`
	Extensions map[string]string `json:"extensions,omitempty"`
	// Data is the data when it is UTF-8 text, else DataBase64 holds it; either is cut to the tail's
	// maxData bytes (DataTruncated), and DataSize is the whole data's size.
	Data          string `json:"data,omitempty"`
	DataBase64    string `json:"dataBase64,omitempty"`
	DataSize      int    `json:"dataSize"`
	DataTruncated bool   `json:"dataTruncated,omitempty"`
}

// tailRequest is what a GET /tail asks for.
type tailRequest struct {
	ref     channel.Ref
	start   channel.TailStart
	typ     string         // only events of this type; "" all
	filter  *filter.Filter // only events it passes (CESQL); nil all
	maxData int
}

// parseTailRequest reads the path and the query: from (latest, earliest, an RFC 3339 time, or a
// duration before now such as 10m), type, filter (a CESQL expression), maxData. Errors name the
// parameter.
func parseTailRequest(r *http.Request, now time.Time) (tailRequest, error) {
	tr := tailRequest{ref: channel.Ref{Namespace: r.PathValue("namespace"), Name: r.PathValue("name")}, maxData: tailMaxData}
	q := r.URL.Query()
	switch from := q.Get("from"); from {
	case "", "latest":
	case "earliest":
		tr.start.Earliest = true
	default:
		if t, err := time.Parse(time.RFC3339Nano, from); err == nil {
			tr.start.Time = t
		} else if d, err := time.ParseDuration(from); err == nil && d > 0 {
			tr.start.Time = now.Add(-d)
		} else {
			return tr, fmt.Errorf("from: %q is not latest, earliest, an RFC 3339 time or a duration before now (10m)", from)
		}
	}
	tr.typ = q.Get("type")
	if expr := q.Get("filter"); expr != "" {
		f, err := filter.Compile(nil, []filter.Spec{{CESQL: expr}})
		if err != nil {
			return tr, fmt.Errorf("filter: %w", err)
		}
		tr.filter = f
	}
	if v := q.Get("maxData"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return tr, fmt.Errorf("maxData: %q is not a number of bytes", v)
		}
		tr.maxData = n
	}
	return tr, nil
}

// tailEvent is what a tail shows of r.
func tailEvent(ref channel.Ref, r channel.TailRecord, maxData int) TailEvent {
	e := r.Event
	te := TailEvent{Channel: ref.String(), Partition: r.Partition, Offset: r.Offset, Skipped: r.Skipped,
		Attributes: map[string]string{"specversion": e.SpecVersion, "id": e.ID, "source": e.Source, "type": e.Type},
		DataSize:   len(e.Data)}
	for name, v := range map[string]string{"datacontenttype": e.DataContentType, "dataschema": e.DataSchema,
		"subject": e.Subject, "time": e.Time} {
		if v != "" {
			te.Attributes[name] = v
		}
	}
	if len(e.Extensions) > 0 {
		te.Extensions = e.Extensions
	}
	data := e.Data
	if len(data) > maxData {
		data, te.DataTruncated = data[:maxData], true
	}
	if utf8.Valid(data) || (te.DataTruncated && utf8.Valid(trimPartialRune(data))) {
		te.Data = string(trimPartialRune(data))
	} else {
		te.DataBase64 = base64.StdEncoding.EncodeToString(data)
	}
	return te
}

// trimPartialRune drops a UTF-8 sequence cut short at the end of b.
func trimPartialRune(b []byte) []byte {
	for i := 1; i <= utf8.UTFMax && i <= len(b); i++ {
		if utf8.RuneStart(b[len(b)-i]) {
			if !utf8.FullRune(b[len(b)-i:]) {
				return b[:len(b)-i]
			}
			break
		}
	}
	return b
}

// serveTail answers GET /tail/NAMESPACE/NAME with the channel's (or broker's) events as Server-Sent Events: a
// comment once the tail's position is fixed (events published after it are all shown), then one
// "cloudevent" message per event (TailEvent), and a comment every tailKeepalive when nothing comes.
// A tail joins no group and commits nothing. Errors before the stream starts are plain-text answers:
// 400 for a bad parameter, 404 for an unknown channel, 501 for a backend without tails, 503 while
// the channel waits for its backend.
func (a *App) serveTail(w http.ResponseWriter, r *http.Request) {
	tr, err := parseTailRequest(r, time.Now())
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	tail, err := a.router.Tail(r.Context(), tr.ref, tr.start)
	if errors.Is(err, channel.ErrNotFound) { // a broker, then: its events are its channel's
		bt, berr := a.router.Tail(r.Context(), channel.BrokerRef(tr.ref.Namespace, tr.ref.Name), tr.start)
		if berr == nil || !errors.Is(berr, channel.ErrNotFound) {
			tail, err = bt, berr
		} else {
			err = fmt.Errorf("no channel or broker %s: %w", tr.ref, channel.ErrNotFound)
		}
	}
	if err != nil {
		http.Error(w, err.Error(), tailStatus(err))
		return
	}
	defer tail.Close()
	flusher, _ := w.(http.Flusher)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no") // nginx: do not buffer the stream
	fmt.Fprintf(w, ": tailing %s\n\n", tr.ref)
	flush := func() {
		if flusher != nil {
			flusher.Flush()
		}
	}
	flush()
	for {
		ctx, cancel := context.WithTimeout(r.Context(), tailKeepalive)
		rec, err := tail.Next(ctx)
		cancel()
		switch {
		case r.Context().Err() != nil:
			return
		case errors.Is(err, context.DeadlineExceeded):
			if _, err := io.WriteString(w, ": keepalive\n\n"); err != nil {
				return
			}
			flush()
			continue
		case err != nil:
			fmt.Fprintf(w, "event: end\ndata: %s\n\n", oneLine(err.Error()))
			flush()
			return
		}
		if (tr.typ != "" && rec.Event.Type != tr.typ) || !tr.filter.Pass(rec.Event) {
			continue
		}
		b, err := json.Marshal(tailEvent(tr.ref, rec, tr.maxData))
		if err != nil {
			continue
		}
		if _, err := fmt.Fprintf(w, "id: %d/%d\nevent: cloudevent\ndata: %s\n\n", rec.Partition, rec.Offset, b); err != nil {
			return
		}
		flush()
	}
}

// tailStatus maps a Tail error to the answer's status.
func tailStatus(err error) int {
	switch {
	case errors.Is(err, channel.ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, ErrNoTail):
		return http.StatusNotImplemented
	case errors.Is(err, channel.ErrUnavailable):
		return http.StatusServiceUnavailable
	case errors.Is(err, context.Canceled):
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}
