package filter

import (
	"errors"
	"strings"
	"testing"

	"github.com/eventgate/eventgate/gateway/event"
)

func testEvent() *event.Event {
	return &event.Event{ID: "1", Source: "/orders/eu", SpecVersion: "1.0", Type: "com.example.order.created",
		Subject: "order-42", Extensions: map[string]string{"region": "eu-west", "empty": ""}}
}

func TestAttributes(t *testing.T) {
	cases := []struct {
		name  string
		attrs map[string]string
		want  bool
	}{
		{"none filters nothing", nil, true},
		{"context attribute equal", map[string]string{"type": "com.example.order.created"}, true},
		{"context attribute differs", map[string]string{"type": "com.example.order"}, false},
		{"all entries must match", map[string]string{"type": "com.example.order.created", "source": "/orders/us"}, false},
		{"extension equal", map[string]string{"region": "eu-west"}, true},
		{"extension differs", map[string]string{"region": "us-east"}, false},
		{"empty value matches any value", map[string]string{"region": ""}, true},
		{"empty value requires the extension", map[string]string{"tenant": ""}, false},
		{"empty value requires the context attribute", map[string]string{"dataschema": ""}, false},
		{"empty value on a present optional attribute", map[string]string{"subject": ""}, true},
		{"an extension present with an empty value is present", map[string]string{"empty": ""}, true},
		{"missing extension with a value", map[string]string{"tenant": "a"}, false},
		{"case-sensitive", map[string]string{"type": "COM.EXAMPLE.ORDER.CREATED"}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f, err := Compile(c.attrs, nil)
			if err != nil {
				t.Fatal(err)
			}
			if got := f.Pass(testEvent()); got != c.want {
				t.Fatalf("Pass = %v, want %v", got, c.want)
			}
		})
	}
}

func TestFilters(t *testing.T) {
	typ := func(v string) Spec { return Spec{Exact: map[string]string{"type": v}} }
	cases := []struct {
		name    string
		filters []Spec
		want    bool
	}{
		{"exact", []Spec{typ("com.example.order.created")}, true},
		{"exact differs", []Spec{typ("com.example.order")}, false},
		{"exact on an extension", []Spec{{Exact: map[string]string{"region": "eu-west"}}}, true},
		{"exact on a missing attribute", []Spec{{Exact: map[string]string{"tenant": "a"}}}, false},
		{"exact empty value on a missing attribute", []Spec{{Exact: map[string]string{"tenant": ""}}}, false},
		{"exact empty value on an empty extension", []Spec{{Exact: map[string]string{"empty": ""}}}, true},
		{"prefix", []Spec{{Prefix: map[string]string{"type": "com.example."}}}, true},
		{"prefix differs", []Spec{{Prefix: map[string]string{"type": "org."}}}, false},
		{"prefix on an extension", []Spec{{Prefix: map[string]string{"region": "eu-"}}}, true},
		{"prefix on a missing attribute", []Spec{{Prefix: map[string]string{"dataschema": "http"}}}, false},
		{"suffix", []Spec{{Suffix: map[string]string{"type": ".created"}}}, true},
		{"suffix differs", []Spec{{Suffix: map[string]string{"type": ".deleted"}}}, false},
		{"suffix on an extension", []Spec{{Suffix: map[string]string{"region": "-west"}}}, true},
		{"list is ANDed", []Spec{typ("com.example.order.created"), {Suffix: map[string]string{"source": "/us"}}}, false},
		{"list all pass", []Spec{typ("com.example.order.created"), {Suffix: map[string]string{"source": "/eu"}}}, true},
		{"all", []Spec{{All: []Spec{typ("com.example.order.created"), {Prefix: map[string]string{"subject": "order-"}}}}}, true},
		{"all one fails", []Spec{{All: []Spec{typ("com.example.order.created"), {Prefix: map[string]string{"subject": "x"}}}}}, false},
		{"all empty", []Spec{{All: []Spec{}}}, true},
		{"any", []Spec{{Any: []Spec{typ("a"), typ("com.example.order.created")}}}, true},
		{"any none passes", []Spec{{Any: []Spec{typ("a"), typ("b")}}}, false},
		{"any empty", []Spec{{Any: []Spec{}}}, true},
		{"not", []Spec{{Not: &Spec{Exact: map[string]string{"type": "a"}}}}, true},
		{"not of a passing filter", []Spec{{Not: &Spec{Prefix: map[string]string{"type": "com."}}}}, false},
		{"not of a missing attribute", []Spec{{Not: &Spec{Exact: map[string]string{"tenant": "a"}}}}, true},
		{"nested", []Spec{{Any: []Spec{{All: []Spec{typ("x")}}, {Not: &Spec{Any: []Spec{typ("y")}}}}}}, true},
		{"cesql true", []Spec{{CESQL: "type LIKE 'com.example.%' AND region = 'eu-west'"}}, true},
		{"cesql false", []Spec{{CESQL: "region = 'us-east'"}}, false},
		{"cesql in", []Spec{{CESQL: "type IN ('com.example.order.created', 'x')"}}, true},
		{"cesql missing attribute does not pass", []Spec{{CESQL: "tenant = 'a'"}}, false},
		{"cesql not of a missing attribute does not pass", []Spec{{CESQL: "NOT (tenant = 'a')"}}, false},
		{"cesql exists", []Spec{{CESQL: "EXISTS region AND NOT EXISTS tenant"}}, true},
		{"cesql non-boolean result does not pass", []Spec{{CESQL: "subject"}}, false},
		{"cesql integer result does not pass", []Spec{{CESQL: "1 + 1"}}, false},
		{"cesql math error does not pass", []Spec{{CESQL: "1 / 0 = 0"}}, false},
		{"cesql with others", []Spec{typ("com.example.order.created"), {CESQL: "subject = 'order-42'"}}, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f, err := Compile(nil, c.filters)
			if err != nil {
				t.Fatal(err)
			}
			if got := f.Pass(testEvent()); got != c.want {
				t.Fatalf("Pass = %v, want %v", got, c.want)
			}
		})
	}
}

// Knative: a non-empty filters overrides filter.attributes entirely.
func TestFiltersOverrideAttributes(t *testing.T) {
	attrs := map[string]string{"type": "something.else"}
	f, err := Compile(attrs, []Spec{{Prefix: map[string]string{"type": "com.example."}}})
	if err != nil {
		t.Fatal(err)
	}
	if !f.Pass(testEvent()) {
		t.Fatal("filters should override filter.attributes: the event matches filters")
	}
	f, err = Compile(map[string]string{"type": "com.example.order.created"}, []Spec{{Exact: map[string]string{"type": "x"}}})
	if err != nil {
		t.Fatal(err)
	}
	if f.Pass(testEvent()) {
		t.Fatal("filters should override filter.attributes: the event matches only the attributes")
	}
	// An empty filters list does not override.
	f, err = Compile(attrs, []Spec{})
	if err != nil {
		t.Fatal(err)
	}
	if f.Pass(testEvent()) {
		t.Fatal("an empty filters list should leave filter.attributes in force")
	}
}

func TestCompileErrors(t *testing.T) {
	cases := []struct {
		filters []Spec
		want    string
	}{
		{[]Spec{{CESQL: "type = "}}, "filters[0].cesql: "},
		{[]Spec{{Exact: map[string]string{"a": "b"}}, {Any: []Spec{{CESQL: "(("}}}}, "filters[1].any[0].cesql: "},
		{[]Spec{{Not: &Spec{}}}, "filters[0].not: no dialect"},
		{[]Spec{{CESQL: "   "}}, "filters[0].cesql: empty expression"},
	}
	for _, c := range cases {
		_, err := Compile(nil, c.filters)
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Compile(%+v) = %v, want ErrInvalid containing %q", c.filters, err, c.want)
		}
	}
}

func TestNilFilterAndEvent(t *testing.T) {
	var f *Filter
	if !f.Pass(testEvent()) {
		t.Fatal("a nil filter passes every event")
	}
	f, _ = Compile(map[string]string{"type": ""}, nil)
	if f.Pass(nil) {
		t.Fatal("a nil event passes no filter")
	}
}

// The attribute dialects allocate nothing per event: a trigger that filters most events out costs
// little per event.
func TestAttributeDialectsDoNotAllocate(t *testing.T) {
	f, err := Compile(nil, []Spec{{Any: []Spec{{Exact: map[string]string{"type": "a"}}, {Prefix: map[string]string{"region": "us"}}}}})
	if err != nil {
		t.Fatal(err)
	}
	e := testEvent()
	if n := testing.AllocsPerRun(100, func() { f.Pass(e) }); n != 0 {
		t.Fatalf("Pass allocates %v times per event", n)
	}
}

func FuzzCESQL(f *testing.F) {
	for _, s := range []string{"type = 'a'", "EXISTS x", "((", "a LIKE '%'", "1/0", "'", "NOT NOT TRUE"} {
		f.Add(s)
	}
	e := testEvent()
	f.Fuzz(func(t *testing.T, expr string) {
		// Never panics: a bad expression is an error, a bad evaluation does not pass.
		if flt, err := Compile(nil, []Spec{{CESQL: expr}}); err == nil {
			flt.Pass(e)
		}
	})
}
