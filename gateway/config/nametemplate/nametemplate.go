// Package nametemplate is the one home of the backends' name templates (a Kafka topic or group, a
// NATS stream, subject or consumer, a Pub/Sub topic or subscription): Go templates over Data,
// checked when the configuration is read and rendered for each channel and group. Each backend keeps
// its own rule for a legal name (the fit function). Like gateway/config/check, it is a leaf that
// components may import.
package nametemplate

import (
	"bytes"
	"errors"
	"text/template"
)

// Data is what a name template sees: {{.Namespace}}, {{.Name}} (the channel's, or the group's) and
// {{.Channel}} (the channel's name, for a group).
type Data struct {
	Namespace string
	Name      string
	Channel   string
}

// Template is a parsed name template and its backend's rule.
type Template struct {
	t   *template.Template
	fit func(string) (string, error)
}

// Parse parses text as the template named key. fit turns a rendered name into a legal one or says
// why it cannot (nil: any name but the empty one). A sample is rendered and fitted at once, so that a
// template naming an unknown field, or one whose names the backend can never take, fails now rather
// than at the first channel.
func Parse(key, text string, fit func(string) (string, error)) (*Template, error) {
	t, err := template.New(key).Option("missingkey=error").Parse(text)
	if err != nil {
		return nil, err
	}
	nt := &Template{t: t, fit: fit}
	if _, err := nt.Render(Data{Namespace: "ns", Name: "name", Channel: "channel"}); err != nil {
		return nil, err
	}
	return nt, nil
}

// Render executes the template on d and fits the result.
func (t *Template) Render(d Data) (string, error) {
	var b bytes.Buffer
	if err := t.t.Execute(&b, d); err != nil {
		return "", err
	}
	name := b.String()
	if t.fit == nil {
		if name == "" {
			return "", errors.New("name is empty")
		}
		return name, nil
	}
	return t.fit(name)
}
