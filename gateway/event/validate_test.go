package event

import (
	"errors"
	"testing"
)

func validEvent() *Event {
	return &Event{
		ID:          "1234-1234-1234",
		Source:      "/mycontext/subcontext",
		SpecVersion: "1.0",
		Type:        "com.example.someevent",
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name    string
		mutate  func(e *Event)
		attr    string // "" means valid
		message string // expected Error() when set
	}{
		{name: "minimal", mutate: func(*Event) {}},
		{name: "all optional", mutate: func(e *Event) {
			e.DataContentType = "application/json; charset=utf-8"
			e.DataSchema = "https://example.com/schema.json"
			e.Subject = "larger-context é"
			e.Time = "2018-04-05T17:31:00.123+02:00"
			e.SetExtension("comexampleextension1", "value")
			e.SetExtension("a1", "")
		}},
		{name: "absolute source", mutate: func(e *Event) { e.Source = "https://github.com/cloudevents/spec/pull/123" }},
		{name: "urn source", mutate: func(e *Event) { e.Source = "urn:event:from:myapi/resource/123" }},
		{name: "source with port", mutate: func(e *Event) { e.Source = "http://127.0.0.1:8080/x?y=1#z" }},
		{name: "missing id", mutate: func(e *Event) { e.ID = "" }, attr: "id", message: `attribute "id": required`},
		{name: "missing source", mutate: func(e *Event) { e.Source = "" }, attr: "source"},
		{name: "missing type", mutate: func(e *Event) { e.Type = "" }, attr: "type"},
		{name: "missing specversion", mutate: func(e *Event) { e.SpecVersion = "" }, attr: "specversion"},
		{name: "old specversion", mutate: func(e *Event) { e.SpecVersion = "0.3" }, attr: "specversion"},
		{name: "bad time", mutate: func(e *Event) { e.Time = "2018-04-05 17:31:00" }, attr: "time",
			message: `attribute "time": not an RFC 3339 timestamp`},
		{name: "relative dataschema", mutate: func(e *Event) { e.DataSchema = "/schema" }, attr: "dataschema"},
		{name: "source not a URI-reference", mutate: func(e *Event) { e.Source = "http://[::1" }, attr: "source"},
		{name: "source colon in first segment", mutate: func(e *Event) { e.Source = "1a:b" }, attr: "source"},
		{name: "control char in id", mutate: func(e *Event) { e.ID = "a\x01b" }, attr: "id"},
		{name: "C1 control char in subject", mutate: func(e *Event) { e.Subject = "a\u0085b" }, attr: "subject"},
		{name: "invalid UTF-8 in type", mutate: func(e *Event) { e.Type = "a\xffb" }, attr: "type"},
		{name: "DEL in extension", mutate: func(e *Event) { e.SetExtension("x", "\x7f") }, attr: "x"},
		{name: "upper-case extension", mutate: func(e *Event) { e.SetExtension("Foo", "v") }, attr: "Foo"},
		{name: "underscore extension", mutate: func(e *Event) { e.SetExtension("foo_bar", "v") }, attr: "foo_bar"},
		{name: "reserved data", mutate: func(e *Event) { e.SetExtension("data", "v") }, attr: "data"},
		{name: "reserved data_base64", mutate: func(e *Event) { e.SetExtension("data_base64", "v") }, attr: "data_base64"},
		{name: "core name as extension", mutate: func(e *Event) { e.SetExtension("subject", "v") }, attr: "subject"},
		{name: "long extension name is fine", mutate: func(e *Event) { e.SetExtension("abcdefghijklmnopqrstuvwxyz0123", "v") }},
		{name: "bad media type", mutate: func(e *Event) { e.DataContentType = "json" }, attr: "datacontenttype"},
		{name: "media type with space", mutate: func(e *Event) { e.DataContentType = " text/plain" }, attr: "datacontenttype"},
		{name: "first bad extension in order", mutate: func(e *Event) {
			e.SetExtension("zz", "\x00")
			e.SetExtension("bb", "\x00")
		}, attr: "bb"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := validEvent()
			tt.mutate(e)
			err := e.Validate()
			if tt.attr == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			var ae *AttributeError
			if !errors.As(err, &ae) {
				t.Fatalf("Validate() = %v, want *AttributeError", err)
			}
			if ae.Attribute != tt.attr {
				t.Errorf("attribute = %q, want %q (%v)", ae.Attribute, tt.attr, err)
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("error %v does not wrap ErrInvalid", err)
			}
			if tt.message != "" && err.Error() != tt.message {
				t.Errorf("Error() = %q, want %q", err.Error(), tt.message)
			}
		})
	}
}

func TestValidateNil(t *testing.T) {
	var e *Event
	if err := e.Validate(); !errors.Is(err, ErrInvalid) {
		t.Fatalf("nil event: Validate() = %v, want ErrInvalid", err)
	}
}

func TestSimpleURIReferenceAgreesWithParser(t *testing.T) {
	// The allocation-free fast path may only accept what url.Parse accepts.
	for _, s := range []string{"/a/b", "//host/x", "https://example.com", "https://example.com/a-b_c~d",
		"a://b", "/", "x+y.z://h.example/p"} {
		if !simpleURIReference(s) {
			t.Errorf("simpleURIReference(%q) = false, want true", s)
		}
		if !validURIReference(s) {
			t.Errorf("validURIReference(%q) = false", s)
		}
	}
	for _, s := range []string{"", "a:b", "http://", "1x://h", "http://h:80", "/a b", "/a%20b"} {
		if simpleURIReference(s) {
			t.Errorf("simpleURIReference(%q) = true, want false (left to url.Parse)", s)
		}
	}
}

func TestEqual(t *testing.T) {
	a := validEvent()
	b := a.Clone()
	if !a.Equal(b) {
		t.Fatal("clone not equal")
	}
	b.Extensions = map[string]string{}
	b.Data = []byte{}
	if !a.Equal(b) {
		t.Fatal("empty and nil extensions/data should be equal")
	}
	b.SetExtension("x", "")
	if a.Equal(b) {
		t.Fatal("extra empty-valued extension should differ")
	}
	c := a.Clone()
	c.Data = []byte("x")
	if a.Equal(c) || c.Equal(a) {
		t.Fatal("different data should differ")
	}
	if a.Equal(nil) || !(*Event)(nil).Equal(nil) {
		t.Fatal("nil handling")
	}
}
