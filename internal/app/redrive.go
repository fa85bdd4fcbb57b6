package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/eventgate/eventgate/gateway/channel"
	"github.com/eventgate/eventgate/gateway/dispatch"
	"github.com/eventgate/eventgate/gateway/event"
	"github.com/eventgate/eventgate/gateway/redrive"
	"github.com/eventgate/eventgate/gateway/resources"
	"github.com/eventgate/eventgate/gateway/tracing"
)

// newRedrives builds the redrive jobs' manager: it reads through the router, sends with
// sendRedrive, keeps jobs under redrive.stateDir when set, and counts a channel as durable when
// it is not in memory.
func (a *App) newRedrives() *redrive.Manager {
	var store redrive.Store
	if dir := a.cfg.Redrive.StateDir; dir != "" {
		store = redrive.FileStore{Dir: dir}
	}
	return redrive.NewManager(redrive.Deps{
		Source:  a.router,
		Sender:  redrive.SenderFunc(a.sendRedrive),
		Store:   store,
		Durable: a.durable,
		Log:     a.log.With("component", "redrive"),
	})
}

// durable reports whether channel ref keeps its events across a restart: it is declared (running,
// or waiting for its backend) on a backend other than memory. Resume runs after the resources are
// applied, so every declared channel is known.
func (a *App) durable(ref channel.Ref) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	c := a.channels[ref]
	if c == nil {
		c = a.waiting[ref]
	}
	if c == nil {
		return false
	}
	p := c.Provisioner
	if p == "" {
		p = a.cfg.Channels.DefaultProvisioner
	}
	return p != resources.ProvisionerInMemory
}

// sendRedrive sends a redriven event: to subscription to as it delivers (its subscriber, its
// retries, its reply, its dead letter when it fails again), else to dest, the knativeerrordest it
// was dead-lettered from: a channel ("channel:NAMESPACE/NAME") is published to, a URL gets one
// binary-mode POST (dispatch.timeout) that must answer 2xx; either is a PRODUCER span with role
// redrive when tracing is on (see send).
func (a *App) sendRedrive(ctx context.Context, to *channel.Ref, dest string, ev *event.Event) error {
	if to != nil {
		a.mu.Lock()
		r := a.dispatchers[to.String()]
		a.mu.Unlock()
		if r == nil {
			return fmt.Errorf("subscription %s does not run here", to)
		}
		switch res := r.d.Redeliver(ctx, ev); res {
		case dispatch.Delivered:
			return nil
		case dispatch.DeadLettered:
			return fmt.Errorf("%s's subscriber failed again; dead-lettered again", to)
		case dispatch.Abandoned:
			return fmt.Errorf("%s: %w", to, context.Cause(ctx))
		default:
			return fmt.Errorf("%s's subscriber failed again and the subscription has no dead-letter sink", to)
		}
	}
	if dest == "" {
		return errors.New("the dead letter has no knativeerrordest; redrive it with --to")
	}
	var target resources.Target
	if name, ok := strings.CutPrefix(dest, "channel:"); ok {
		ref, err := redrive.ParseRef(name)
		if err != nil {
			return fmt.Errorf("knativeerrordest %q: %w", dest, err)
		}
		target.Channel = &ref
	} else {
		u, err := url.Parse(dest)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("knativeerrordest %q is not an http(s) URL", dest)
		}
		target.URL, target.CACerts = dest, a.caCertsOf(dest)
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, a.cfg.Dispatch.Timeout)
		defer cancel()
	}
	return a.send(ctx, target, tracing.RoleRedrive, ev)
}

// maxRedriveRequest bounds a POST /redrives body.
const maxRedriveRequest = 64 << 10

// serveRedriveStart answers POST /redrives (body: redrive.Request) with 202 and the new job's
// status (Location: /redrives/ID). 400 for a bad request, 404 for an unknown channel or
// subscription, 501 for a backend that cannot be redriven, 503 while the channel waits for its
// backend.
func (a *App) serveRedriveStart(w http.ResponseWriter, r *http.Request) {
	var req redrive.Request
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxRedriveRequest))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		http.Error(w, "body: "+err.Error(), http.StatusBadRequest)
		return
	}
	if req.To != "" {
		if to, err := redrive.ParseRef(req.To); err == nil {
			a.mu.Lock()
			_, ok := a.dispatchers[to.String()]
			a.mu.Unlock()
			if !ok {
				http.Error(w, "to: no subscription "+req.To+" runs here", http.StatusNotFound)
				return
			}
		}
	}
	st, err := a.redrives.Start(r.Context(), req)
	if err != nil {
		http.Error(w, err.Error(), redriveStatus(err))
		return
	}
	w.Header().Set("Location", "/redrives/"+st.ID)
	writeJSON(w, http.StatusAccepted, st)
}

// redriveStatus maps a redrive error to the answer's status.
func redriveStatus(err error) int {
	switch {
	case errors.Is(err, redrive.ErrInvalid):
		return http.StatusBadRequest
	case errors.Is(err, redrive.ErrNotFound), errors.Is(err, channel.ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, ErrNoRedrive):
		return http.StatusNotImplemented
	}
	return tailStatus(err)
}

// serveRedriveList answers GET /redrives: {"jobs": [Status…]}, oldest first.
func (a *App) serveRedriveList(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string][]redrive.Status{"jobs": a.redrives.List()})
}

// serveRedriveGet answers GET /redrives/ID with the job's status; 404 when there is none.
func (a *App) serveRedriveGet(w http.ResponseWriter, r *http.Request) {
	st, err := a.redrives.Get(r.PathValue("id"))
	if err != nil {
		http.Error(w, err.Error(), http.StatusNotFound)
		return
	}
	writeJSON(w, http.StatusOK, st)
}

// serveRedriveCancel answers DELETE /redrives/ID: the job is stopped (it sends nothing more once
// the answer comes) and its status returned. The dead letters stay in their channel.
func (a *App) serveRedriveCancel(w http.ResponseWriter, r *http.Request) {
	st, err := a.redrives.Cancel(r.Context(), r.PathValue("id"))
	switch {
	case errors.Is(err, redrive.ErrNotFound):
		http.Error(w, err.Error(), http.StatusNotFound)
		return
	case err != nil:
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	}
	writeJSON(w, http.StatusOK, st)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

// caCertsOf is the CACerts a running subscription gives for URL u (a knativeerrordest names its
// subscriber's URL), "" when none does.
func (a *App) caCertsOf(u string) string {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, r := range a.dispatchers {
		for _, d := range []*dispatch.Destination{&r.sub.Subscriber, r.sub.Reply, r.sub.DeadLetter} {
			if d != nil && d.URL == u && d.CACerts != "" {
				return d.CACerts
			}
		}
	}
	return ""
}
