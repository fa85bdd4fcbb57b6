package resources

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Kind is one row of the table of kinds eventgate runs: a Kind, the apiVersions it is accepted at,
// how a document of it is decoded (its validation is the decoded resource's own validate method),
// and what runs it. A kind with no row is not managed: it is accepted whatever its shape and
// reported as such, never an error.
type Kind struct {
	// Kind is the manifest's kind ("KafkaChannel").
	Kind string
	// APIVersions are the accepted "GROUP/VERSION"s. A document of this Kind in one of their groups
	// at another version is an error; in another group (someone else's "Channel") it is not managed.
	APIVersions []string
	// decode decodes a document of the kind into its resource.
	decode decodeFunc
	// Runner says what runs the kind's resources.
	Runner Runner
}

// Role is what a kind's resources are to the gateway.
type Role string

// Roles.
const (
	RoleChannel      Role = "channel"      // a channel, created by a provisioner
	RoleSubscription Role = "subscription" // a dispatcher from a channel to a subscriber
	RoleSource       Role = "source"       // an adapter producing events into a sink
	RoleBroker       Role = "broker"       // a broker: a channel underneath, with triggers on it
	RoleTrigger      Role = "trigger"      // a filtered dispatcher from a broker to a subscriber
)

// Runner says what runs a kind's resources.
type Runner struct {
	Role Role
	// Provisioner is, for a channel kind, the provisioner the kind implies ("" when the manifest or
	// the configured default chooses). Only channel kinds have one.
	Provisioner string
	// Adapter is, for a source kind, the name of the adapter that runs it, as the adapter registers
	// itself (adapters.Register).
	Adapter string
}

// Runners, for the table's rows.
var subscriptionRun = Runner{Role: RoleSubscription}

func channelRun(provisioner string) Runner {
	return Runner{Role: RoleChannel, Provisioner: provisioner}
}

func sourceRun(adapter string) Runner { return Runner{Role: RoleSource, Adapter: adapter} }

// kinds is the table: one row per kind and shape (the seed's Channel and messaging's Channel are
// the same Kind in two shapes, so two rows). Its order is the order kinds are listed in messages.
// Adding a kind is adding its row, its decoder (a file of its own) and, for a source, its adapter.
//
// It is filled by init because some decoders read it (a channelTemplate names a channel kind).
var kinds []Kind

func init() {
	kinds = []Kind{
		{Kind: "Channel", APIVersions: []string{"eventing.knative.dev/v1alpha1"},
			decode: decodeProvisionerChannel, Runner: channelRun("")},
		{Kind: "Channel", APIVersions: []string{"messaging.knative.dev/v1", "messaging.knative.dev/v1beta1", "messaging.knative.dev/v1alpha1"},
			decode: decodeTemplateChannel, Runner: channelRun("")},
		{Kind: "InMemoryChannel", APIVersions: []string{"messaging.knative.dev/v1", "messaging.knative.dev/v1beta1", "messaging.knative.dev/v1alpha1"},
			decode: decodeChannel, Runner: channelRun(ProvisionerInMemory)},
		{Kind: "KafkaChannel", APIVersions: []string{"messaging.knative.dev/v1", "messaging.knative.dev/v1beta1", "messaging.knative.dev/v1alpha1"},
			decode: decodeChannel, Runner: channelRun(ProvisionerKafka)},
		// knative-gcp's Channel: a channel on Google Cloud Pub/Sub.
		{Kind: "Channel", APIVersions: []string{"messaging.cloud.google.com/v1beta1", "messaging.cloud.google.com/v1alpha1"},
			decode: decodeChannel, Runner: channelRun(ProvisionerPubSub)},
		{Kind: "NatsJetStreamChannel", APIVersions: []string{"messaging.knative.dev/v1alpha1"},
			decode: decodeChannel, Runner: channelRun(ProvisionerNATS)},
		{Kind: "Subscription", APIVersions: []string{"eventing.knative.dev/v1alpha1",
			"messaging.knative.dev/v1", "messaging.knative.dev/v1beta1", "messaging.knative.dev/v1alpha1"},
			decode: decodeSubscription, Runner: subscriptionRun},
		{Kind: "Broker", APIVersions: []string{"eventing.knative.dev/v1", "eventing.knative.dev/v1beta1"},
			decode: decodeBroker, Runner: Runner{Role: RoleBroker}},
		{Kind: "Trigger", APIVersions: []string{"eventing.knative.dev/v1", "eventing.knative.dev/v1beta1"},
			decode: decodeTrigger, Runner: Runner{Role: RoleTrigger}},
		{Kind: "KubernetesEventSource", APIVersions: []string{"sources.eventing.knative.dev/v1alpha1"},
			decode: decodeKubernetesEventSource, Runner: sourceRun("kubernetes")},
		{Kind: "ApiServerSource", APIVersions: []string{"sources.knative.dev/v1", "sources.knative.dev/v1beta1", "sources.knative.dev/v1alpha2",
			"sources.eventing.knative.dev/v1alpha1"},
			decode: decodeAPIServerSource, Runner: sourceRun("kubernetes")},
		{Kind: "GitHubSource", APIVersions: []string{"sources.knative.dev/v1alpha1", "sources.eventing.knative.dev/v1alpha1"},
			decode: decodeGitHubSource, Runner: sourceRun("github")},
		{Kind: "CloudPubSubSource", APIVersions: []string{"events.cloud.google.com/v1", "events.cloud.google.com/v1beta1", "events.cloud.google.com/v1alpha1"},
			decode: decodeCloudPubSubSource, Runner: sourceRun("pubsub")},
		{Kind: "GcpPubSubSource", APIVersions: []string{"sources.eventing.knative.dev/v1alpha1"},
			decode: decodeGcpPubSubSource, Runner: sourceRun("pubsub")},
		{Kind: "ContainerSource", APIVersions: []string{"sources.knative.dev/v1", "sources.knative.dev/v1beta1", "sources.knative.dev/v1alpha2",
			"sources.eventing.knative.dev/v1alpha1"},
			decode: decodeContainerSource, Runner: sourceRun("container")},
	}
}

// Kinds returns the table of managed kinds, in order. The result is a copy.
func Kinds() []Kind {
	out := slices.Clone(kinds)
	for i := range out {
		out[i].APIVersions = slices.Clone(out[i].APIVersions)
	}
	return out
}

// RunnerOf returns what runs resources of kind, whatever their apiVersion (every row of one Kind has
// the same Role; a channel Kind's rows may imply different provisioners, as knative-gcp's Channel does,
// and RunnerOf gives the first row's); false when kind is not managed.
func RunnerOf(kind string) (Runner, bool) {
	for _, k := range kinds {
		if k.Kind == kind {
			return k.Runner, true
		}
	}
	return Runner{}, false
}

// splitAPIVersion returns the group ("" for the core group) and version of "GROUP/VERSION".
func splitAPIVersion(apiVersion string) (group, version string) {
	if i := strings.LastIndexByte(apiVersion, '/'); i >= 0 {
		return apiVersion[:i], apiVersion[i+1:]
	}
	return "", apiVersion
}

// lookupKind returns the row of apiVersion/kind; nil and "" for an unmanaged kind; nil and a
// message for a managed kind at an unsupported version of one of its groups.
func lookupKind(apiVersion, kind string) (*Kind, string) {
	group, _ := splitAPIVersion(apiVersion)
	for i := range kinds {
		k := &kinds[i]
		if k.Kind != kind {
			continue
		}
		var want []string // the row's versions of this group
		for _, v := range k.APIVersions {
			if g, _ := splitAPIVersion(v); g == group {
				want = append(want, v)
			}
		}
		if len(want) == 0 {
			continue
		}
		if slices.Contains(want, apiVersion) {
			return k, ""
		}
		return nil, fmt.Sprintf("%s %q is not supported (supported: %s)", kind, apiVersion, strings.Join(want, ", "))
	}
	return nil, ""
}

// column returns value(row) for every row of the table where it is not "", each once, in table order.
func column(value func(k *Kind) string) []string {
	var out []string
	for i := range kinds {
		if v := value(&kinds[i]); v != "" && !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	return out
}

// channelKinds returns the Kinds that are channels.
func channelKinds() []string {
	return column(func(k *Kind) string {
		if k.Runner.Role != RoleChannel {
			return ""
		}
		return k.Kind
	})
}

// templateKinds returns the channel Kinds that imply their provisioner: what a Channel's
// spec.channelTemplate may name.
func templateKinds() []string {
	return column(func(k *Kind) string {
		if templateRow(k.Kind) == nil {
			return ""
		}
		return k.Kind
	})
}

// provisioners returns the provisioners the channel kinds imply: what a channel may be provisioned by.
func provisioners() []string {
	return column(func(k *Kind) string { return k.Runner.Provisioner })
}

// quoted returns names, each quoted (%q).
func quoted(names []string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = strconv.Quote(n)
	}
	return out
}

// templateRow returns the row a channelTemplate's kind names (any apiVersion); nil when it names no
// channel kind with a provisioner of its own. A Kind that some row leaves to the manifest (Channel) is
// never a template kind, even where another group's row implies a provisioner.
func templateRow(kind string) *Kind {
	var row *Kind
	for i := range kinds {
		if k := &kinds[i]; k.Kind == kind {
			if k.Runner.Role == RoleChannel && k.Runner.Provisioner == "" {
				return nil
			}
			if row == nil && k.Runner.Provisioner != "" {
				row = k
			}
		}
	}
	return row
}

// alternatives joins names for a message: "A", "A or B", "A, B or C".
func alternatives(names []string) string {
	if len(names) < 2 {
		return strings.Join(names, "")
	}
	return strings.Join(names[:len(names)-1], ", ") + " or " + names[len(names)-1]
}
