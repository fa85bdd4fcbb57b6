package kube

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"gopkg.in/yaml.v3"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/tools/cache"

	"github.com/eventgate/eventgate/gateway/resources"
)

// Annotations eventgate reads on cluster objects.
const (
	// AnnotationManaged marks a resource for eventgate when kubernetes.managedOnly is set.
	AnnotationManaged = "eventgate.dev/managed"
)

// File is the Meta.File of every resource read from the cluster: messages about them name it where
// a file-based resource names its file.
const File = "kubernetes"

// ReasonInvalidSpec is the Ready reason of an object whose spec eventgate refuses; its message is
// the problem as `eventgate validate` words it.
const ReasonInvalidSpec = "InvalidSpec"

// Object is one cluster object of a managed kind, as the last snapshot saw it.
type Object struct {
	GVR schema.GroupVersionResource
	// Obj is the object as the snapshot read it: its generation is the one the snapshot's set holds.
	Obj *unstructured.Unstructured
	// Problem says why the object is not run ("" when it is part of the set): its spec as
	// `eventgate validate` words the problem, or a conflict with another resource.
	Problem string
	// store is the informer's, to read the object as it is now.
	store cache.Store
}

// Current returns the object as the informer holds it now; nil once it is gone.
func (o *Object) Current() *unstructured.Unstructured {
	if o.store == nil {
		return nil
	}
	key := o.Obj.GetName()
	if ns := o.Obj.GetNamespace(); ns != "" {
		key = ns + "/" + key
	}
	item, ok, err := o.store.GetByKey(key)
	if err != nil || !ok {
		return nil
	}
	u, _ := item.(*unstructured.Unstructured)
	return u
}

// Key identifies an object: its group, Kind, namespace and name.
type Key struct{ Group, Kind, Namespace, Name string }

// Snapshot is what the cluster declares now: the resources to run, and every object seen.
type Snapshot struct {
	Set     *resources.Set
	Objects map[Key]*Object
}

// Source watches every managed kind in the API server with informers and turns what it holds into
// a resources.Set, as files are turned into one. Create it with NewSource, start it with Start;
// Snapshot and Changed are safe for concurrent use.
type Source struct {
	cfg     Config
	client  *Client
	opt     resources.Options
	log     *slog.Logger
	changed chan struct{}

	mu      sync.Mutex
	watched []watched
	last    *Snapshot // the last Snapshot taken; nil before
	// addresses are the addresses of the last snapshot's references, by refKey (see Address).
	addresses map[string]resources.Address

	snapMu sync.Mutex          // one Snapshot at a time; guards good
	good   map[Key]goodVersion // each object's last version that decoded
}

// goodVersion is the last version of an object that decoded: what runs while a later one does not.
type goodVersion struct {
	uid        string
	generation int64
	set        *resources.Set
}

// watched is one kind in one namespace scope, at the version the server serves.
type watched struct {
	crd CRD
	gvr schema.GroupVersionResource
	inf cache.SharedIndexInformer
}

// NewSource returns a Source over client. opt decodes the objects as files are decoded.
func NewSource(cfg Config, client *Client, opt resources.Options, log *slog.Logger) *Source {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Source{cfg: cfg, client: client, opt: opt, log: log, changed: make(chan struct{}, 1)}
}

// Changed receives a value after objects were added, updated or deleted (coalesced: one value may
// stand for many changes). It is never closed.
func (s *Source) Changed() <-chan struct{} { return s.changed }

func (s *Source) notify() {
	select {
	case s.changed <- struct{}{}:
	default:
	}
}

// rediscoverEvery is how often kinds the server did not serve are looked for again (CRDs installed
// after the gateway started).
const rediscoverEvery = 30 * time.Second

// Start finds the version the server serves of every managed kind (the first of the table's
// versions that it serves), starts an informer for each in every watched namespace and waits until
// they hold the server's objects, or ctx ends (an error). A kind the server serves in no version is
// logged and looked for again every 30 seconds: its informers start when its CRD is installed. The
// informers stop when ctx ends.
func (s *Source) Start(ctx context.Context) error {
	missing, syncs, err := s.watchServed(ctx, CRDs())
	if err != nil {
		return err
	}
	if !cache.WaitForCacheSync(ctx.Done(), syncs...) {
		return fmt.Errorf("kubernetes: informers did not sync: %w", context.Cause(ctx))
	}
	s.log.Info("watching the cluster's resources", "kinds", len(CRDs())-len(missing), "namespaces", strings.Join(s.cfg.Namespaces, ","))
	if len(missing) > 0 {
		go s.rediscover(ctx, missing)
	}
	return nil
}

// rediscover starts the informers of missing kinds as the server comes to serve them, until every
// kind is watched or ctx ends.
func (s *Source) rediscover(ctx context.Context, missing []CRD) {
	t := time.NewTicker(rediscoverEvery)
	defer t.Stop()
	for len(missing) > 0 {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		still, syncs, err := s.watchServed(ctx, missing)
		if err != nil {
			s.log.Warn("kubernetes: discovery", "err", err)
			continue
		}
		if len(syncs) > 0 && cache.WaitForCacheSync(ctx.Done(), syncs...) {
			s.notify()
		}
		missing = still
	}
}

// watchServed starts informers for the kinds of crds the server serves, and returns those it does
// not serve (logged) and what tells when the started ones have synced.
func (s *Source) watchServed(ctx context.Context, crds []CRD) ([]CRD, []cache.InformerSynced, error) {
	served, err := s.served(crds)
	if err != nil {
		return nil, nil, err
	}
	namespaces := s.cfg.Namespaces
	if len(namespaces) == 0 {
		namespaces = []string{""}
	}
	var ws []watched
	var missing []CRD
	var names []string
	for _, c := range crds {
		v := ""
		for _, cand := range c.Versions {
			if served[c.Group+"/"+cand][c.Plural] {
				v = cand
				break
			}
		}
		if v == "" {
			missing = append(missing, c)
			names = append(names, c.Name())
			continue
		}
		gvr := schema.GroupVersionResource{Group: c.Group, Version: v, Resource: c.Plural}
		for _, ns := range namespaces {
			f := dynamicinformer.NewFilteredDynamicSharedInformerFactory(s.client.Dynamic, 0, ns, nil)
			inf := f.ForResource(gvr).Informer()
			_, _ = inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
				AddFunc:    func(any) { s.notify() },
				UpdateFunc: func(old, cur any) { s.notifyUpdate(old, cur) },
				DeleteFunc: func(any) { s.notify() },
			})
			ws = append(ws, watched{crd: c, gvr: gvr, inf: inf})
			go inf.Run(ctx.Done())
		}
	}
	if len(names) > 0 {
		s.log.Warn("kinds not served by the API server, not watched yet (install the chart's CRDs, or Knative's)",
			"resources", strings.Join(names, ","))
	}
	syncs := make([]cache.InformerSynced, len(ws))
	for i, w := range ws {
		syncs[i] = w.inf.HasSynced
	}
	s.mu.Lock()
	s.watched = append(s.watched, ws...)
	s.mu.Unlock()
	return missing, syncs, nil
}

// notifyUpdate notifies an update that changed what eventgate reads: not one of status alone (its
// own writes) nor a resync.
func (s *Source) notifyUpdate(old, cur any) {
	o, ok1 := old.(*unstructured.Unstructured)
	c, ok2 := cur.(*unstructured.Unstructured)
	if ok1 && ok2 && o.GetGeneration() == c.GetGeneration() &&
		mapsEqual(o.GetAnnotations(), c.GetAnnotations()) && o.GetGeneration() != 0 {
		return
	}
	s.notify()
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// served returns, by GROUP/VERSION of crds, the resources the server serves there.
func (s *Source) served(crds []CRD) (map[string]map[string]bool, error) {
	out := map[string]map[string]bool{}
	for _, c := range crds {
		for _, v := range c.Versions {
			gv := c.Group + "/" + v
			if _, done := out[gv]; done {
				continue
			}
			out[gv] = map[string]bool{}
			list, err := s.client.Discovery.ServerResourcesForGroupVersion(gv)
			if err != nil {
				if isNotFound(err) {
					continue
				}
				return nil, fmt.Errorf("kubernetes: discovery of %s: %w", gv, err)
			}
			for _, r := range list.APIResources {
				out[gv][r.Name] = true
			}
		}
	}
	return out, nil
}

func isNotFound(err error) bool {
	var nf *discovery.ErrGroupDiscoveryFailed
	if errors.As(err, &nf) {
		return true
	}
	return strings.Contains(err.Error(), "the server could not find the requested resource") ||
		strings.Contains(err.Error(), "not found")
}

// Managed reports whether the gateway runs obj: always, unless kubernetes.managedOnly is set; then
// when it is annotated eventgate.dev/managed: "true", or is a Broker of class eventgate.
func (s *Source) Managed(obj *unstructured.Unstructured) bool {
	if !s.cfg.ManagedOnly {
		return true
	}
	a := obj.GetAnnotations()
	if a[AnnotationManaged] == "true" {
		return true
	}
	run, ok := resources.RunnerOf(obj.GetKind())
	return ok && run.Role == resources.RoleBroker && a[resources.AnnotationBrokerClass] == resources.BrokerClassEventgate
}

// ResourceProblem is an error about one resource, as a Snapshot's check returns them: File,
// Kind, Namespace and Name say which (File is this package's File for the cluster's resources).
type ResourceProblem interface {
	error
	Resource() (file, kind, namespace, name string)
}

// Snapshot decodes every managed object the informers hold. Objects that do not decode, that break
// a rule spanning resources (a duplicate name, a reference to a channel that is not declared) in the
// union of base (the files' resources; nil for none) and the cluster's, or that check (nil for none)
// refuses with a ResourceProblem, are left out of the set with their Problem; what remains of the
// cluster's resources is Snapshot.Set. An object updated to a version that does not decode keeps its
// last good version in the set (with the Problem saying so), as a bad file keeps the last good set. Problems of base's own resources are not the cluster's: they
// stop the pruning and are left to the caller. Objects being deleted are left out. Safe for
// concurrent use.
func (s *Source) Snapshot(base *resources.Set, check func(all *resources.Set) error) Snapshot {
	s.snapMu.Lock()
	defer s.snapMu.Unlock()
	if s.good == nil {
		s.good = map[Key]goodVersion{}
	}
	seen := map[Key]bool{}
	s.mu.Lock()
	ws := slices.Clone(s.watched)
	s.mu.Unlock()
	snap := Snapshot{Set: &resources.Set{}, Objects: map[Key]*Object{}}
	var keys []Key // decoded, in a stable order
	sets := map[Key]*resources.Set{}
	for _, w := range ws {
		for _, item := range w.inf.GetStore().List() {
			u, ok := item.(*unstructured.Unstructured)
			if !ok || u.GetDeletionTimestamp() != nil || !s.Managed(u) {
				continue
			}
			k := Key{Group: w.gvr.Group, Kind: u.GetKind(), Namespace: u.GetNamespace(), Name: u.GetName()}
			o := &Object{GVR: w.gvr, Obj: u, store: w.inf.GetStore()}
			snap.Objects[k] = o
			seen[k] = true
			set, err := s.decode(u)
			if err != nil {
				o.Problem = problemText(err)
				// An update that does not decode does not stop what ran: as with a bad file, the
				// last good version keeps running (the status says so).
				if g, ok := s.good[k]; ok && g.uid == string(u.GetUID()) {
					o.Problem += fmt.Sprintf(" (generation %d keeps running)", g.generation)
					sets[k] = g.set
					keys = append(keys, k)
				}
				continue
			}
			s.good[k] = goodVersion{uid: string(u.GetUID()), generation: u.GetGeneration(), set: set}
			sets[k] = set
			keys = append(keys, k)
		}
	}
	slices.SortFunc(keys, func(a, b Key) int {
		return strings.Compare(a.Namespace+"/"+a.Kind+"/"+a.Name+"/"+a.Group, b.Namespace+"/"+b.Kind+"/"+b.Name+"/"+b.Group)
	})
	for k := range s.good {
		if !seen[k] {
			delete(s.good, k)
		}
	}
	// Drop what is refused until the rest is valid: dropping a channel may leave a subscription
	// naming nothing, which the next round drops in turn.
	for range len(keys) + 1 {
		cluster := &resources.Set{}
		for _, k := range keys {
			cluster.Add(sets[k])
		}
		snap.Set = cluster
		all := &resources.Set{}
		all.Add(base)
		all.Add(cluster)
		err := all.Validate()
		if err == nil && check != nil {
			err = check(all)
		}
		if err == nil {
			break
		}
		bad := map[Key]string{}
		for _, e := range unwrapAll(err) {
			var re *resources.Error
			var rp ResourceProblem
			var file, kind, ns, name, msg string
			switch {
			case errors.As(e, &re):
				file, kind, ns, name, msg = re.File, re.Kind, re.Namespace, re.Name, problemOf(re)
			case errors.As(e, &rp):
				file, kind, ns, name = rp.Resource()
				msg = strings.TrimPrefix(rp.Error(), File+": ")
				msg = strings.TrimPrefix(msg, kind+" "+ns+"/"+name+": ")
			default:
				continue
			}
			if file != File {
				continue
			}
			for _, k := range keys {
				if k.Kind == kind && k.Namespace == ns && k.Name == name {
					bad[k] = joinProblem(bad[k], msg)
				}
			}
		}
		if len(bad) == 0 {
			break // the files' problems, or none of one resource: the caller reports them
		}
		keys = slices.DeleteFunc(keys, func(k Key) bool {
			if p, ok := bad[k]; ok {
				snap.Objects[k].Problem = p
				return true
			}
			return false
		})
	}
	s.lookupAddresses(snap.Set)
	s.mu.Lock()
	s.last = &snap
	s.mu.Unlock()
	return snap
}

// Last returns the last Snapshot taken (the one the gateway applied last); nil before the first.
func (s *Source) Last() *Snapshot {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last
}

// decode turns obj into a set of one resource, through the same decoder as files: its apiVersion,
// kind, metadata (name, namespace, annotations) and spec.
func (s *Source) decode(obj *unstructured.Unstructured) (*resources.Set, error) {
	doc := map[string]any{
		"apiVersion": obj.GetAPIVersion(),
		"kind":       obj.GetKind(),
		"metadata": map[string]any{
			"name": obj.GetName(), "namespace": obj.GetNamespace(), "annotations": obj.GetAnnotations(),
		},
	}
	if spec, ok := obj.Object["spec"]; ok {
		doc["spec"] = spec
	}
	data, err := yaml.Marshal(doc)
	if err != nil {
		return nil, fmt.Errorf("%s %s/%s: %w", obj.GetKind(), obj.GetNamespace(), obj.GetName(), err)
	}
	return resources.Decode(File, data, s.opt)
}

// unwrapAll flattens joined errors.
func unwrapAll(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, unwrapAll(e)...)
		}
		return out
	}
	return []error{err}
}

// problemOf words one problem as `eventgate validate` does, without the file, document and line
// (they are the object's own, and the line is of a document the cluster never showed).
func problemOf(e *resources.Error) string {
	if e.Path == "" {
		return e.Msg
	}
	return e.Path + ": " + e.Msg
}

// problemText words every problem of err, "; " between them.
func problemText(err error) string {
	var msg string
	for _, e := range unwrapAll(err) {
		var re *resources.Error
		if errors.As(e, &re) {
			msg = joinProblem(msg, problemOf(re))
		} else {
			msg = joinProblem(msg, e.Error())
		}
	}
	return msg
}

func joinProblem(a, b string) string {
	if a == "" {
		return b
	}
	if strings.Contains(a, b) {
		return a
	}
	return a + "; " + b
}
