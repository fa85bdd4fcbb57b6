// Package console is the web console on the admin port: a page of plain HTML, CSS and JavaScript
// embedded in the binary (no CDN, no build step), and the one data endpoint it needs beyond the
// admin port's own, the gateway's figures over the last minutes from an in-process Sampler.
//
// Routes (mount the Handler for "GET /{$}" and "GET /console/"):
//
//	GET /                          the console's page
//	GET /console/static/FILE       its scripts and styles
//	GET /console/api/metrics       Figures: every subscription, trigger and channel now
//	GET /console/api/series?subscription=NS/NAME (or trigger=, channel=, broker=)   Series of one
//
// Everything else the page shows it reads from the admin port's own endpoints: /status (the
// resources and their relations), /tail (events, with the admin token), /redrives. The page and the
// figures are read-only, like /status and /metrics, and need no token; the page asks for the admin
// token only when the gateway answers 401, and keeps it in the tab's sessionStorage.
package console

import (
	"embed"
	"encoding/json"
	"io/fs"
	"net/http"
	"strings"

	"github.com/eventgate/eventgate/gateway/resources"
)

//go:embed static
var static embed.FS

// Handler serves the console. Create it with New; it is safe for concurrent use.
type Handler struct {
	sampler *Sampler
	files   http.Handler
	index   []byte
}

// New returns the console over sampler (which the caller runs: see Sampler.Run).
func New(sampler *Sampler) *Handler {
	sub, err := fs.Sub(static, "static")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	index, err := fs.ReadFile(sub, "index.html")
	if err != nil {
		panic(err)
	}
	return &Handler{sampler: sampler, index: index,
		files: http.StripPrefix("/console/static/", http.FileServerFS(sub))}
}

// ServeHTTP answers the routes in the package comment; anything else is 404.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	hdr := w.Header()
	hdr.Set("X-Content-Type-Options", "nosniff")
	switch p := r.URL.Path; {
	case p == "/" || p == "/console" || p == "/console/":
		hdr.Set("Content-Type", "text/html; charset=utf-8")
		hdr.Set("Cache-Control", "no-cache")
		// The page loads only its own files and talks only to this port.
		hdr.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'")
		hdr.Set("Referrer-Policy", "no-referrer")
		w.Write(h.index)
	case strings.HasPrefix(p, "/console/static/") && !strings.HasSuffix(p, "/"):
		hdr.Set("Cache-Control", "no-cache")
		h.files.ServeHTTP(w, r)
	case p == "/console/api/metrics":
		h.sampler.Touch()
		writeJSON(w, h.sampler.Figures())
	case p == "/console/api/series":
		h.sampler.Touch()
		q := r.URL.Query()
		switch {
		case q.Get("subscription") != "":
			writeJSON(w, h.sampler.SubscriptionSeries(q.Get("subscription")))
		case q.Get("trigger") != "":
			ns, name, _ := strings.Cut(q.Get("trigger"), "/")
			writeJSON(w, h.sampler.SubscriptionSeries(ns+"/"+resources.TriggerGroupPrefix+name))
		case q.Get("channel") != "":
			writeJSON(w, h.sampler.ChannelSeries(q.Get("channel")))
		case q.Get("broker") != "":
			writeJSON(w, h.sampler.ChannelSeries(q.Get("broker")))
		default:
			http.Error(w, "series: give subscription, trigger, channel or broker=NAMESPACE/NAME", http.StatusBadRequest)
		}
	default:
		http.NotFound(w, r)
	}
}

// triggerName is the trigger a subscription label names (trigger.NAME), and whether it names one.
func triggerName(subscription string) (string, bool) {
	return strings.CutPrefix(subscription, resources.TriggerGroupPrefix)
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	if err := json.NewEncoder(w).Encode(v); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
	}
}
