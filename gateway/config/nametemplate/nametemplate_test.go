package nametemplate

import (
	"errors"
	"strings"
	"testing"
)

func TestParseAndRender(t *testing.T) {
	tpl, err := Parse("topicTemplate", "eventgate.{{.Namespace}}.{{.Name}}", nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := tpl.Render(Data{Namespace: "shop", Name: "orders"}); err != nil || got != "eventgate.shop.orders" {
		t.Errorf("Render = %q, %v", got, err)
	}
	// An unknown field fails when the template is parsed, not at the first channel.
	if _, err := Parse("topicTemplate", "{{.Nmae}}", nil); err == nil {
		t.Error("a template naming an unknown field parsed")
	}
	if _, err := Parse("topicTemplate", "{{", nil); err == nil {
		t.Error("a template that does not parse parsed")
	}
	if _, err := Parse("topicTemplate", "{{if false}}x{{end}}", nil); err == nil || !strings.Contains(err.Error(), "empty") {
		t.Errorf("a template that renders nothing: %v, want it refused", err)
	}
	// The backend's rule runs on the sample and on every name.
	noDots := func(s string) (string, error) {
		if strings.Contains(s, ".") {
			return "", errors.New("dots are not allowed")
		}
		return strings.ToUpper(s), nil
	}
	if _, err := Parse("streamTemplate", "{{.Namespace}}.{{.Name}}", noDots); err == nil {
		t.Error("a template whose names the backend refuses parsed")
	}
	tpl, err = Parse("streamTemplate", "{{.Namespace}}_{{.Name}}", noDots)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := tpl.Render(Data{Namespace: "shop", Name: "orders"}); got != "SHOP_ORDERS" {
		t.Errorf("Render = %q, want the name as the backend fitted it", got)
	}
	if _, err := tpl.Render(Data{Namespace: "shop", Name: "a.b"}); err == nil {
		t.Error("a name the backend refuses rendered")
	}
}
