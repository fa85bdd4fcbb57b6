package resources

import (
	"fmt"
	"regexp"
	"strings"
)

var (
	// githubNameRE is a GitHub owner or repository name.
	githubNameRE = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,100}$`)
	// githubEventRE is a GitHub webhook event name ("push", "pull_request").
	githubEventRE = regexp.MustCompile(`^[a-z_]{1,64}$`)
)

// GitHubSpec configures GitHubSource: a webhook receiver.
type GitHubSpec struct {
	Owner      string
	Repository string // "" for an organisation-wide webhook
	EventTypes []string
	// AccessToken and SecretToken are nil when not given. SecretToken is required unless the
	// annotation eventgate.dev/unauthenticated is "true" (Unauthenticated).
	AccessToken     *SecretKeyRef
	SecretToken     *SecretKeyRef
	Unauthenticated bool
}

// decodeGitHubSource decodes GitHubSource: ownerAndRepository, eventTypes, accessToken, secretToken.
func decodeGitHubSource(in input) resource {
	s, spec := in.source(), in.spec
	g := &GitHubSpec{EventTypes: spec.field("eventTypes").strList()}
	oar := spec.field("ownerAndRepository").str()
	g.Owner, g.Repository, _ = strings.Cut(oar, "/")
	g.AccessToken = decodeSecretKeyRef(spec.field("accessToken").field("secretKeyRef"))
	g.SecretToken = decodeSecretKeyRef(spec.field("secretToken").field("secretKeyRef"))
	g.Unauthenticated = annotationBool(spec.p, in.m, AnnotationUnauthenticated)
	s.GitHub = g
	return s
}

func (g *GitHubSpec) validate(p *problems, _ string) {
	switch {
	case g.Owner == "" && g.Repository == "":
		p.invalid("spec.ownerAndRepository", "missing (OWNER/REPOSITORY, or OWNER for an organisation)")
	case !githubNameRE.MatchString(g.Owner) ||
		(g.Repository != "" && !githubNameRE.MatchString(g.Repository)):
		p.invalid("spec.ownerAndRepository", "%q is not OWNER/REPOSITORY", truncate(g.Owner+"/"+g.Repository, 80))
	}
	if len(g.EventTypes) == 0 {
		p.invalid("spec.eventTypes", "missing (GitHub event names, like push or pull_request)")
	}
	for i, t := range g.EventTypes {
		if !githubEventRE.MatchString(t) {
			p.invalid(fmt.Sprintf("spec.eventTypes[%d]", i), "%q is not a GitHub event name", truncate(t, 40))
		}
	}
	validateSecretRef(p, "spec.accessToken.secretKeyRef", g.AccessToken)
	validateSecretRef(p, "spec.secretToken.secretKeyRef", g.SecretToken)
	if g.SecretToken == nil && !g.Unauthenticated {
		p.invalid("spec.secretToken", "missing: webhooks must be signed (or annotate %s: \"true\" to accept unsigned ones)",
			AnnotationUnauthenticated)
	}
}
