package resources

// PubSubSpec configures CloudPubSubSource and GcpPubSubSource.
type PubSubSpec struct {
	Project        string
	Topic          string
	SubscriptionID string
	Credentials    *SecretKeyRef // spec.secret or spec.gcpCredsSecret; nil when not given
}

// decodeCloudPubSubSource decodes CloudPubSubSource: project, topic, subscriptionID, secret.
func decodeCloudPubSubSource(in input) resource {
	s, spec := in.source(), in.spec
	s.PubSub = &PubSubSpec{
		Project:        spec.field("project").str(),
		Topic:          spec.field("topic").str(),
		SubscriptionID: spec.field("subscriptionID").str(),
		Credentials:    decodeSecretKeyRef(spec.field("secret")),
	}
	return s
}

// decodeGcpPubSubSource decodes the seed's GcpPubSubSource: googleCloudProject, topic, gcpCredsSecret
// (CloudPubSubSource's project and secret under their old names; no subscriptionID).
func decodeGcpPubSubSource(in input) resource {
	s, spec := in.source(), in.spec
	s.PubSub = &PubSubSpec{
		Project:     spec.field("googleCloudProject").str(),
		Topic:       spec.field("topic").str(),
		Credentials: decodeSecretKeyRef(spec.field("gcpCredsSecret")),
	}
	in.m.alias("spec.project", "spec.googleCloudProject")
	in.m.alias("spec.secret", "spec.gcpCredsSecret")
	return s
}

func (ps *PubSubSpec) validate(p *problems, kind string) {
	if ps.Topic == "" {
		p.invalid("spec.topic", "missing")
	}
	if ps.Project == "" && kind == "GcpPubSubSource" {
		p.invalid("spec.project", "missing")
	}
	validateSecretRef(p, "spec.secret", ps.Credentials)
}
