// Package kube is the Kubernetes-native mode: the cluster as a source of resources beside the files,
// and the status of what runs written back, as Knative writes it.
//
//   - Source watches every kind of the kinds table (resources.Kinds) with dynamic informers, at the
//     first of the table's versions the API server serves, in every namespace or the configured ones.
//     Snapshot decodes each object through the same decoder as files (resources.Decode) and returns a
//     valid resources.Set: an object that does not decode, or that breaks a rule spanning resources,
//     is left out with its Problem, in the words `eventgate validate` prints, and the rest run.
//     The gateway combines that set with the files' and applies it on the one reconciler path.
//   - StatusWriter writes, through the status subresource and only while its replica holds the Lease
//     (client-go leader election), each object's observedGeneration, conditions (Ready and the
//     kind's own) and URLs: address.url for channels and brokers, physicalSubscription.subscriberUri
//     and subscriberUri for subscriptions and triggers, sinkUri for sources. It writes only what
//     differs from the object's status.
//   - Source.Address resolves references that are neither channels nor brokers through the API: a
//     core Service to its cluster DNS URL, any addressable object to its status.address.url.
//   - CRDs and CRDManifest are the CustomResourceDefinitions of every kind, generated from the kinds
//     table into the Helm chart's crds/ directory.
//
// With kubernetes.managedOnly, only objects annotated eventgate.dev/managed: "true" (and Brokers of
// class eventgate) are read or written; the others are left to Knative's controllers.
package kube
