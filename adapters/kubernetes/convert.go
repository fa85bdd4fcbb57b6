package kubernetes

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/eventgate/eventgate/gateway/event"
)

// CloudEvent types produced.
const (
	TypeK8sEvent        = "dev.knative.k8s.event"
	TypeAPIServerAdd    = "dev.knative.apiserver.resource.add"
	TypeAPIServerUpdate = "dev.knative.apiserver.resource.update"
	TypeAPIServerDelete = "dev.knative.apiserver.resource.delete"
)

// op is what happened to an object.
type op int

const (
	opAdd op = iota
	opUpdate
	opDelete
)

// apiServerType returns the ApiServerSource event type for o.
func (o op) apiServerType() string {
	switch o {
	case opAdd:
		return TypeAPIServerAdd
	case opDelete:
		return TypeAPIServerDelete
	default:
		return TypeAPIServerUpdate
	}
}

// dedupKey identifies one state of one object as sent: UID "/" resourceVersion, with "/delete"
// appended for a delete (a delete carries the last resourceVersion the informer saw). An add and an
// update of the same state share a key, so a relist that turns one into the other sends nothing.
func dedupKey(ev *corev1.Event, o op) string {
	k := string(ev.UID) + "/" + ev.ResourceVersion
	if o == opDelete {
		k += "/delete"
	}
	return k
}

// plural makes a Kubernetes kind plural the way resource names are: lower-cased, with English
// plural rules ("Pod" → "pods", "Ingress" → "ingresses", "NetworkPolicy" → "networkpolicies").
// Kinds that are already plural ("Endpoints") are kept. It is a heuristic: a CRD may register
// another plural, which only discovery could tell.
func plural(kind string) string {
	k := strings.ToLower(kind)
	switch {
	case k == "":
		return ""
	case k == "endpoints":
		return k
	case strings.HasSuffix(k, "s"), strings.HasSuffix(k, "x"), strings.HasSuffix(k, "z"),
		strings.HasSuffix(k, "ch"), strings.HasSuffix(k, "sh"):
		return k + "es"
	case strings.HasSuffix(k, "y") && len(k) > 1 && !strings.ContainsRune("aeiou", rune(k[len(k)-2])):
		return k[:len(k)-1] + "ies"
	}
	return k + "s"
}

// objectPath returns Knative's path for an object: /apis/APIVERSION/namespaces/NS/PLURAL/NAME, or
// /apis/APIVERSION/PLURAL/NAME when namespace is empty. An empty apiVersion is taken as "v1".
func objectPath(apiVersion, kind, namespace, name string) string {
	if apiVersion == "" {
		apiVersion = "v1"
	}
	var b strings.Builder
	b.WriteString("/apis/")
	b.WriteString(apiVersion)
	if namespace != "" {
		b.WriteString("/namespaces/")
		b.WriteString(namespace)
	}
	b.WriteString("/")
	b.WriteString(plural(kind))
	b.WriteString("/")
	b.WriteString(name)
	return b.String()
}

// eventTime returns the latest of the times an Event carries (lastTimestamp, eventTime,
// series.lastObservedTime, firstTimestamp, creationTimestamp); zero when it has none.
func eventTime(ev *corev1.Event) time.Time {
	var t time.Time
	later := func(c time.Time) {
		if c.After(t) {
			t = c
		}
	}
	later(ev.LastTimestamp.Time)
	later(ev.EventTime.Time)
	if ev.Series != nil {
		later(ev.Series.LastObservedTime.Time)
	}
	later(ev.FirstTimestamp.Time)
	later(ev.CreationTimestamp.Time)
	return t
}

// k8sEvent builds the KubernetesEventSource CloudEvent for ev (see the package doc).
func k8sEvent(ev *corev1.Event) (*event.Event, error) {
	data, err := json.Marshal(ev)
	if err != nil {
		return nil, fmt.Errorf("encode event %s/%s: %w", ev.Namespace, ev.Name, err)
	}
	io := ev.InvolvedObject
	e := &event.Event{
		ID:              dedupKey(ev, opAdd),
		Source:          objectPath(io.APIVersion, io.Kind, io.Namespace, io.Name),
		SpecVersion:     event.SpecVersion,
		Type:            TypeK8sEvent,
		Subject:         ev.Name,
		DataContentType: "application/json",
		Data:            data,
	}
	if t := eventTime(ev); !t.IsZero() {
		e.Time = t.UTC().Format(time.RFC3339Nano)
	}
	return e, nil
}

// reference is Knative's Reference-mode payload.
type reference struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Name       string `json:"name"`
	Namespace  string `json:"namespace,omitempty"`
}

// apiServerEvent builds the ApiServerSource CloudEvent for o happening to ev (see the package doc).
// host is the API server URL; resourceMode selects the whole object as data, else a reference.
func apiServerEvent(ev *corev1.Event, o op, host string, resourceMode bool) (*event.Event, error) {
	var data []byte
	var err error
	if resourceMode {
		c := ev.DeepCopy()
		c.APIVersion, c.Kind = "v1", "Event"
		data, err = json.Marshal(c)
	} else {
		data, err = json.Marshal(reference{APIVersion: "v1", Kind: "Event", Name: ev.Name, Namespace: ev.Namespace})
	}
	if err != nil {
		return nil, fmt.Errorf("encode event %s/%s: %w", ev.Namespace, ev.Name, err)
	}
	return &event.Event{
		ID:              dedupKey(ev, o),
		Source:          host,
		SpecVersion:     event.SpecVersion,
		Type:            o.apiServerType(),
		Subject:         objectPath("v1", "Event", ev.Namespace, ev.Name),
		DataContentType: "application/json",
		Data:            data,
	}, nil
}
