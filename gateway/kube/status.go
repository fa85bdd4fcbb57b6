package kube

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync/atomic"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"

	"github.com/eventgate/eventgate/gateway/resources"
)

// ResourceStatus is what the gateway knows of one resource it runs: the status writer turns it into
// the object's status.
type ResourceStatus struct {
	Kind, Namespace, Name string
	// Known is false while the gateway has not reported on the resource yet.
	Known   bool
	Ready   bool
	Reason  string
	Message string
	Since   time.Time
	// Address is a channel's or broker's ingress URL.
	Address string
	// SubscriberURI, ReplyURI and DeadLetterSinkURI are where a subscription's or trigger's events go.
	SubscriberURI, ReplyURI, DeadLetterSinkURI string
	// SinkURI is where a source's events go; Running is whether its adapter runs.
	SinkURI string
	Running bool
}

// StatusFunc returns the status of every resource the gateway runs now.
type StatusFunc func() []ResourceStatus

// Reasons the status writer gives on its own.
const (
	// ReasonPending: the gateway has not applied the object yet (or its last apply failed; the log
	// says why).
	ReasonPending = "Pending"
)

// statusInterval is how often the leader compares every object's status with what it should be
// (and after each Kick): conditions change between applies too (a backend comes back).
const statusInterval = time.Second

// StatusWriter writes the status of the objects the Source's last snapshot holds, through their
// status subresource, while its replica leads (a coordination.k8s.io Lease): one writer for all the
// replicas, which all serve. Create it with NewStatusWriter and run it with Run.
type StatusWriter struct {
	cfg      Config
	client   *Client
	source   *Source
	status   StatusFunc
	log      *slog.Logger
	identity string
	kick     chan struct{}
	leading  atomic.Bool
	now      func() time.Time
}

// NewStatusWriter returns a writer for source's objects with status from status.
func NewStatusWriter(cfg Config, client *Client, source *Source, status StatusFunc, log *slog.Logger) *StatusWriter {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	host, _ := os.Hostname()
	var b [4]byte
	_, _ = rand.Read(b[:])
	return &StatusWriter{cfg: cfg, client: client, source: source, status: status, log: log,
		identity: host + "_" + hex.EncodeToString(b[:]), kick: make(chan struct{}, 1), now: time.Now}
}

// Identity is this replica's name in the Lease (holderIdentity while it leads).
func (w *StatusWriter) Identity() string { return w.identity }

// Leading reports whether this replica writes status now.
func (w *StatusWriter) Leading() bool { return w.leading.Load() }

// Kick asks the leader to compare and write now (after an apply). It never blocks.
func (w *StatusWriter) Kick() {
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

// leaseNamespace is kubernetes.leaseNamespace, else the pod's namespace, else "default".
func (w *StatusWriter) leaseNamespace() string {
	if w.cfg.LeaseNamespace != "" {
		return w.cfg.LeaseNamespace
	}
	if ns := os.Getenv("POD_NAMESPACE"); ns != "" {
		return ns
	}
	if b, err := os.ReadFile("/var/run/secrets/kubernetes.io/serviceaccount/namespace"); err == nil {
		if ns := strings.TrimSpace(string(b)); ns != "" {
			return ns
		}
	}
	return resources.DefaultNamespace
}

// Run takes part in the election until ctx ends and writes status while it leads; it releases the
// Lease when ctx ends. It returns nil then; an error only when the election cannot be set up.
func (w *StatusWriter) Run(ctx context.Context) error {
	d := w.cfg.LeaseDuration
	if d <= 0 {
		d = DefaultConfig().LeaseDuration
	}
	name := w.cfg.LeaseName
	if name == "" {
		name = DefaultLeaseName
	}
	lock := &resourcelock.LeaseLock{
		LeaseMeta:  metav1.ObjectMeta{Namespace: w.leaseNamespace(), Name: name},
		Client:     w.client.Kube.CoordinationV1(),
		LockConfig: resourcelock.ResourceLockConfig{Identity: w.identity},
	}
	le, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
		Lock:            lock,
		LeaseDuration:   d,
		RenewDeadline:   d * 2 / 3,
		RetryPeriod:     d / 5,
		ReleaseOnCancel: true,
		Name:            name,
		Callbacks: leaderelection.LeaderCallbacks{
			OnStartedLeading: func(ctx context.Context) {
				w.leading.Store(true)
				w.log.Info("status writer: leading", "lease", lock.LeaseMeta.Namespace+"/"+name, "identity", w.identity)
				w.write(ctx)
			},
			OnStoppedLeading: func() {
				if w.leading.Swap(false) {
					w.log.Info("status writer: no longer leading", "identity", w.identity)
				}
			},
		},
	})
	if err != nil {
		return fmt.Errorf("kubernetes: leader election: %w", err)
	}
	for ctx.Err() == nil {
		le.Run(ctx) // returns when leadership is lost or ctx ends; then stand again
	}
	return nil
}

// write compares and writes every object's status until ctx ends.
func (w *StatusWriter) write(ctx context.Context) {
	t := time.NewTicker(statusInterval)
	defer t.Stop()
	for {
		w.WriteOnce(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-w.kick:
		}
	}
}

// WriteOnce writes the status of every object of the last snapshot whose status differs from what
// it should be, and returns how many it wrote. Failures are logged and retried on the next round.
func (w *StatusWriter) WriteOnce(ctx context.Context) int {
	snap := w.source.Last()
	if snap == nil {
		return 0
	}
	byName := map[string]*ResourceStatus{}
	for _, rs := range w.status() {
		byName[rs.Kind+"/"+rs.Namespace+"/"+rs.Name] = &rs
	}
	n := 0
	for _, o := range snap.Objects {
		cur := o.Current()
		if cur == nil || cur.GetUID() != o.Obj.GetUID() {
			continue // deleted, or deleted and made again: the next snapshot has it
		}
		rs := byName[o.Obj.GetKind()+"/"+o.Obj.GetNamespace()+"/"+o.Obj.GetName()]
		want := w.desired(o, rs)
		if sameStatus(want, cur) {
			continue
		}
		patch, err := json.Marshal(map[string]any{"status": want})
		if err != nil {
			continue
		}
		_, err = w.client.Dynamic.Resource(o.GVR).Namespace(cur.GetNamespace()).
			Patch(ctx, cur.GetName(), types.MergePatchType, patch, metav1.PatchOptions{FieldManager: "eventgate"}, "status")
		if err != nil {
			if ctx.Err() == nil {
				w.log.Warn("status not written", "kind", cur.GetKind(), "namespace", cur.GetNamespace(), "name", cur.GetName(), "err", err)
			}
			continue
		}
		n++
	}
	return n
}

// desired is the status o should have: its observed generation, its conditions, and the URLs of
// its role. rs is nil when the gateway has not reported on o.
func (w *StatusWriter) desired(o *Object, rs *ResourceStatus) map[string]any {
	run, _ := resources.RunnerOf(o.Obj.GetKind())
	ready := condition{Type: "Ready", Status: "Unknown", Reason: ReasonPending, Message: "not applied yet"}
	var own []condition
	var since time.Time
	switch {
	case o.Problem != "": // not run, or its last good version runs (rs then has its URLs)
		ready = condition{Type: "Ready", Status: "False", Reason: ReasonInvalidSpec, Message: o.Problem}
	case rs != nil && rs.Known:
		ready = condition{Type: "Ready", Status: boolStatus(rs.Ready), Reason: rs.Reason, Message: rs.Message}
		since = rs.Since
	}
	if since.IsZero() {
		since = o.Obj.GetCreationTimestamp().Time
	}
	if rs == nil {
		rs = &ResourceStatus{}
	}
	out := map[string]any{"observedGeneration": o.Obj.GetGeneration()}
	switch run.Role {
	case resources.RoleChannel, resources.RoleBroker:
		own = append(own, condition{Type: "Addressable", Status: boolStatus(rs.Address != "")})
		out["address"] = nilIfEmpty(map[string]any{"url": rs.Address}, rs.Address)
	case resources.RoleSubscription:
		own = append(own, condition{Type: "ReferencesResolved", Status: boolStatus(rs.SubscriberURI != "")})
		out["physicalSubscription"] = nilIfEmpty(dropEmpty(map[string]any{"subscriberUri": rs.SubscriberURI,
			"replyUri": rs.ReplyURI, "deadLetterSinkUri": rs.DeadLetterSinkURI}), rs.SubscriberURI)
	case resources.RoleTrigger:
		own = append(own, condition{Type: "SubscriberResolved", Status: boolStatus(rs.SubscriberURI != "")})
		out["subscriberUri"] = nilIfEmpty(rs.SubscriberURI, rs.SubscriberURI)
	case resources.RoleSource:
		own = append(own, condition{Type: "SinkProvided", Status: boolStatus(rs.SinkURI != "")},
			condition{Type: "Deployed", Status: boolStatus(rs.Running)})
		out["sinkUri"] = nilIfEmpty(rs.SinkURI, rs.SinkURI)
	}
	when := since.UTC().Truncate(time.Second).Format(time.RFC3339)
	conds := []any{ready.object(when)}
	for _, c := range own {
		conds = append(conds, c.object(when))
	}
	out["conditions"] = conds
	return out
}

// condition is a Knative condition.
type condition struct{ Type, Status, Reason, Message string }

func (c condition) object(when string) map[string]any {
	return dropEmpty(map[string]any{"type": c.Type, "status": c.Status, "reason": c.Reason, "message": c.Message,
		"lastTransitionTime": when})
}

func boolStatus(b bool) string {
	if b {
		return "True"
	}
	return "False"
}

// nilIfEmpty is v, or nil (a merge patch removes the field) when key is "".
func nilIfEmpty(v any, key string) any {
	if key == "" {
		return nil
	}
	return v
}

func dropEmpty(m map[string]any) map[string]any {
	for k, v := range m {
		if v == "" {
			delete(m, k)
		}
	}
	return m
}

// sameStatus reports whether obj's status already has every field of want (a nil in want: absent).
func sameStatus(want map[string]any, obj *unstructured.Unstructured) bool {
	cur, _ := obj.Object["status"].(map[string]any)
	for k, v := range want {
		c, ok := cur[k]
		if v == nil {
			if ok && c != nil {
				return false
			}
			continue
		}
		a, err1 := json.Marshal(v)
		b, err2 := json.Marshal(c)
		if err1 != nil || err2 != nil || string(a) != string(b) {
			return false
		}
	}
	return true
}
