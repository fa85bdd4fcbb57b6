package resources

import (
	"fmt"
	"regexp"
)

var envNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// EnvVar is one environment variable of a ContainerSource's program; exactly one of Value and
// SecretKeyRef is used (Value may be empty).
type EnvVar struct {
	Name         string
	Value        string
	SecretKeyRef *SecretKeyRef
}

// ContainerSpec configures ContainerSource: a user program told where to send events.
type ContainerSpec struct {
	Name    string
	Image   string
	Command []string
	Args    []string
	Env     []EnvVar
}

// decodeContainerSource decodes ContainerSource: the one container of spec.template.spec.containers,
// or v1alpha1's flat spec.image, spec.args, spec.env.
func decodeContainerSource(in input) resource {
	s, spec := in.source(), in.spec
	c := &ContainerSpec{}
	if spec.has("template") {
		containers := spec.field("template").field("spec").field("containers").list()
		if len(containers) > 1 {
			spec.p.invalid(joinPath(spec.path, "template.spec.containers"),
				"has %d containers: eventgate runs exactly one program per source", len(containers))
		}
		if len(containers) > 0 {
			decodeContainer(containers[0], c)
		}
	} else if spec.has("image") || spec.has("args") || spec.has("command") {
		// v1alpha1's flat form: spec.image, spec.args, spec.env.
		decodeContainer(spec, c)
		in.m.alias("spec.template.spec.containers[0]", "spec")
	}
	s.Container = c
	return s
}

func decodeContainer(v val, c *ContainerSpec) {
	v.isMap()
	c.Name = v.field("name").str()
	c.Image = v.field("image").str()
	c.Command = v.field("command").strList()
	c.Args = v.field("args").strList()
	for _, e := range v.field("env").list() {
		e.isMap()
		ev := EnvVar{Name: e.field("name").str(), Value: e.field("value").str()}
		ev.SecretKeyRef = decodeSecretKeyRef(e.field("valueFrom").field("secretKeyRef"))
		c.Env = append(c.Env, ev)
	}
}

func (c *ContainerSpec) validate(p *problems, _ string) {
	const path = "spec.template.spec.containers[0]"
	if c.Image == "" && len(c.Command) == 0 {
		p.invalid(path, "needs an image or a command")
	}
	for i, e := range c.Env {
		ep := fmt.Sprintf("%s.env[%d]", path, i)
		if !envNameRE.MatchString(e.Name) {
			p.invalid(ep+".name", "%q is not an environment variable name", truncate(e.Name, 40))
		}
		if e.SecretKeyRef != nil && e.Value != "" {
			p.invalid(ep, "give either value or valueFrom, not both")
		}
		validateSecretRef(p, ep+".valueFrom.secretKeyRef", e.SecretKeyRef)
		if e.Name == "K_SINK" || e.Name == "K_CE_OVERRIDES" {
			p.invalid(ep+".name", "%s is set by eventgate", e.Name)
		}
	}
}
