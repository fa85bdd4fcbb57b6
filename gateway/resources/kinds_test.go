package resources

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"testing"
)

// TestKindsTable checks the table's own rules: apiVersions are GROUP/VERSION and name one row per
// Kind and group, every row of one Kind has one Runner, and a Runner fills the fields of its role only.
func TestKindsTable(t *testing.T) {
	rowOf := map[string]int{}       // KIND GROUP → row
	runnerOf := map[string]Runner{} // KIND → runner
	for i, k := range Kinds() {
		if k.Kind == "" || len(k.APIVersions) == 0 || k.decode == nil {
			t.Errorf("row %d (%s) lacks a kind, apiVersions or decoder", i, k.Kind)
		}
		for _, v := range k.APIVersions {
			g, ver := splitAPIVersion(v)
			if g == "" || ver == "" || strings.Count(v, "/") != 1 {
				t.Errorf("%s: apiVersion %q is not GROUP/VERSION", k.Kind, v)
			}
			key := k.Kind + " " + g
			if prev, ok := rowOf[key]; ok && prev != i {
				t.Errorf("%s of group %s is in rows %d and %d", k.Kind, g, prev, i)
			}
			rowOf[key] = i
		}
		if len(slices.Compact(slices.Sorted(slices.Values(k.APIVersions)))) != len(k.APIVersions) {
			t.Errorf("%s lists an apiVersion twice: %v", k.Kind, k.APIVersions)
		}
		if prev, ok := runnerOf[k.Kind]; ok && (prev.Role != k.Runner.Role || prev.Adapter != k.Runner.Adapter) {
			t.Errorf("%s has runners %+v and %+v", k.Kind, prev, k.Runner)
		}
		runnerOf[k.Kind] = k.Runner
		r := k.Runner
		switch r.Role {
		case RoleChannel:
			if r.Adapter != "" {
				t.Errorf("%s: a channel names an adapter", k.Kind)
			}
		case RoleSubscription:
			if r.Adapter != "" || r.Provisioner != "" {
				t.Errorf("%s: a subscription names an adapter or provisioner", k.Kind)
			}
		case RoleSource:
			if r.Adapter == "" || r.Provisioner != "" {
				t.Errorf("%s: a source must name its adapter and no provisioner: %+v", k.Kind, r)
			}
		case RoleBroker, RoleTrigger:
			if r.Adapter != "" || r.Provisioner != "" {
				t.Errorf("%s: a broker or trigger names an adapter or provisioner (the class chooses): %+v", k.Kind, r)
			}
		default:
			t.Errorf("%s: role %q", k.Kind, r.Role)
		}
	}
}

// TestEveryKindDecodes decodes a document of every row at every apiVersion and checks it lands where
// its Runner says, and that the same Kind in another group, or at another version, is treated as
// lookupKind says.
func TestEveryKindDecodes(t *testing.T) {
	for _, k := range Kinds() {
		for _, v := range k.APIVersions {
			src := fmt.Sprintf("apiVersion: %s\nkind: %s\nmetadata: {name: x}\n", v, k.Kind)
			s, _ := decodeFile("t.yaml", []byte(src), Options{DefaultProvisioner: ProvisionerKafka})
			var got []string
			for _, c := range s.Channels {
				got = append(got, "channel "+c.Provisioner)
			}
			for range s.Subscriptions {
				got = append(got, "subscription")
			}
			for range s.Sources {
				got = append(got, "source")
			}
			for range s.Brokers {
				got = append(got, "broker")
			}
			for range s.Triggers {
				got = append(got, "trigger")
			}
			want := string(k.Runner.Role)
			if k.Runner.Role == RoleChannel {
				want += " " + cmp.Or(k.Runner.Provisioner, ProvisionerKafka)
			}
			if !slices.Equal(got, []string{want}) {
				t.Errorf("%s %s decoded as %q, want [%s]", v, k.Kind, got, want)
			}
			if r, ok := RunnerOf(k.Kind); !ok || r.Role != k.Runner.Role || r.Adapter != k.Runner.Adapter {
				t.Errorf("RunnerOf(%s) = %+v, %v", k.Kind, r, ok)
			}
			if ref := (Reference{Kind: k.Kind}); ref.IsChannel() != (k.Runner.Role == RoleChannel) {
				t.Errorf("Reference to %s: IsChannel() = %v", k.Kind, ref.IsChannel())
			}
		}
		g, _ := splitAPIVersion(k.APIVersions[0])
		if row, msg := lookupKind(g+"/v0", k.Kind); row != nil ||
			!strings.HasPrefix(msg, fmt.Sprintf("%s %q is not supported (supported: %s", k.Kind, g+"/v0", k.APIVersions[0])) {
			t.Errorf("%s at %s/v0: row %v, message %q", k.Kind, g, row, msg)
		}
		if row, msg := lookupKind("example.com/v1", k.Kind); row != nil || msg != "" {
			t.Errorf("%s of example.com: row %v, message %q, want not managed", k.Kind, row, msg)
		}
	}
	if _, ok := RunnerOf("Service"); ok {
		t.Error("RunnerOf(Service) is managed")
	}
}

func TestKindLists(t *testing.T) {
	if got := strings.Join(channelKinds(), ", "); got != "Channel, InMemoryChannel, KafkaChannel, NatsJetStreamChannel" {
		t.Errorf("channel kinds %q", got)
	}
	if got := alternatives(templateKinds()); got != "InMemoryChannel, KafkaChannel or NatsJetStreamChannel" {
		t.Errorf("template kinds %q", got)
	}
	if got := alternatives(quoted(provisioners())); got != `"inmemory", "kafka", "pubsub" or "nats"` {
		t.Errorf("provisioners %s", got)
	}
	for in, want := range map[string]string{"": "", "a": "a", "a b": "a or b", "a b c": "a, b or c"} {
		if got := alternatives(strings.Fields(in)); got != want {
			t.Errorf("alternatives(%q) = %q, want %q", in, got, want)
		}
	}
}
