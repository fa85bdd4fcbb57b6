// Package kubernetes runs KubernetesEventSource and ApiServerSource: it watches core/v1 Events in one
// namespace through a client-go informer and turns each new Event, or each change to one, into a
// CloudEvent for the source's sink.
//
// # Connecting
//
// The adapter uses the in-cluster configuration (service account token) when it runs in a pod, else
// the kubeconfig named by KUBECONFIG (or ~/.kube/config). With neither, New returns an error wrapping
// adapters.ErrNotRun. This package's tests inject a fake clientset through newAdapter's settings.
//
// # Events produced
//
// KubernetesEventSource (sources.eventing.knative.dev/v1alpha1), for each added or updated Event:
//
//	type            dev.knative.k8s.event
//	id              UID "/" resourceVersion of the Event (deterministic: a relist reproduces it)
//	source          the involved object's path in Knative's form /apis/APIVERSION/namespaces/NS/PLURAL/NAME
//	                (/apis/APIVERSION/PLURAL/NAME for a cluster-scoped object); PLURAL is the lower-cased
//	                kind made plural by English rules ("Pod" → "pods", "Ingress" → "ingresses",
//	                "Policy" → "policies", "Endpoints" stays)
//	subject         the Event's name
//	time            the latest of the Event's lastTimestamp, eventTime, series.lastObservedTime,
//	                firstTimestamp and creationTimestamp
//	datacontenttype application/json
//	data            the Event as JSON, as the API returns it (metadata, involvedObject, reason, message, …)
//
// ApiServerSource (sources.knative.dev/v1) with resources [{apiVersion: v1, kind: Event}], for each
// add, update and delete:
//
//	type    dev.knative.apiserver.resource.add | .update | .delete
//	id      UID "/" resourceVersion, with "/delete" appended for a delete
//	source  the API server URL (the client configuration's host, https://kubernetes.default.svc in a pod)
//	subject the Event's own path, /apis/v1/namespaces/NS/events/NAME
//	data    mode Resource: the Event with apiVersion and kind set; mode Reference:
//	        {"apiVersion","kind","name","namespace"}
//
// Only core/v1 Events are watched; New rejects an ApiServerSource that lists another kind. A resource's
// label selector is honoured.
//
// # Delivery
//
// The informer's handlers only enqueue: a single worker sends to the sink, in order, so a slow sink
// never blocks the informer. A failed send is retried with capped exponential backoff (200ms doubling
// to 30s, 15 attempts); an event that still fails is dropped, logged and
// counted as failed. At most 4096 events wait at once; beyond that new events are dropped, logged and
// counted as failed. Kubernetes does not redeliver, so these are the only losses, and they are visible.
//
// # Not replayed, not duplicated
//
// Events whose time (above) is before the adapter started are skipped (counted as skipped), so a
// restart does not replay the namespace's history; the annotation eventgate.dev/replay-events: "true"
// turns this off. Timestamps have one-second precision, so the comparison is made with the start time
// truncated to the second: an event from the same second as the start is sent.
//
// An event is remembered as sent (by UID and resourceVersion) only once the sink accepted it. A
// relist (a watch that expired with 410 Gone, a reconnect) that shows the same Event again, a resync,
// or an update that leaves the resourceVersion unchanged never sends it twice; the memory of sent
// events is bounded (the last 16384). A real repeat — the API server bumping count or
// series.count — carries a new resourceVersion and is a new event.
//
// # RBAC
//
// The identity the gateway runs as needs get, list and watch on events in the watched namespace:
//
//	apiVersion: rbac.authorization.k8s.io/v1
//	kind: Role
//	metadata: {name: eventgate-event-watcher, namespace: NS}
//	rules:
//	- apiGroups: [""]
//	  resources: [events]
//	  verbs: [get, list, watch]
//
// bound to the gateway's ServiceAccount with a RoleBinding in NS (one per watched namespace), or a
// ClusterRole with the same rule and a ClusterRoleBinding to watch any namespace.
package kubernetes
