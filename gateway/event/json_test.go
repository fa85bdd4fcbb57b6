package event

import (
	"encoding/json"
	"errors"
	"net/http"
	"testing"
)

func TestMarshalStructured(t *testing.T) {
	tests := []struct {
		name string
		e    *Event
		want string
	}{
		{name: "JSON data inline", e: &Event{ID: "x", Source: "/s", SpecVersion: "1.0", Type: "t",
			DataContentType: "application/json", Data: []byte(`{"a": [1, 2]}`),
			Extensions: map[string]string{"zeta": "1", "alpha": "q\"\\"}},
			want: `{"specversion":"1.0","id":"x","source":"/s","type":"t","datacontenttype":"application/json",` +
				`"alpha":"q\"\\","zeta":"1","data":{"a": [1, 2]}}`},
		{name: "invalid JSON under JSON type goes base64", e: &Event{ID: "x", Source: "/s", SpecVersion: "1.0", Type: "t",
			DataContentType: "application/json", Data: []byte(`{`)},
			want: `{"specversion":"1.0","id":"x","source":"/s","type":"t","datacontenttype":"application/json","data_base64":"ew=="}`},
		{name: "text goes base64", e: &Event{ID: "x", Source: "/s", SpecVersion: "1.0", Type: "t",
			DataContentType: "text/plain", Data: []byte("hi"), Subject: "é\u2028", Time: "2020-01-01T00:00:00Z",
			DataSchema: "https://s.example/x"},
			want: `{"specversion":"1.0","id":"x","source":"/s","type":"t","datacontenttype":"text/plain",` +
				`"dataschema":"https://s.example/x","subject":"é\u2028","time":"2020-01-01T00:00:00Z","data_base64":"aGk="}`},
		{name: "no content type goes base64", e: &Event{ID: "x", Source: "/s", SpecVersion: "1.0", Type: "t",
			Data: []byte(`{}`)},
			want: `{"specversion":"1.0","id":"x","source":"/s","type":"t","data_base64":"e30="}`},
		{name: "no data", e: &Event{ID: "x", Source: "/s", SpecVersion: "1.0", Type: "t"},
			want: `{"specversion":"1.0","id":"x","source":"/s","type":"t"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := MarshalStructured(tt.e)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
			if !json.Valid(got) {
				t.Errorf("output is not valid JSON")
			}
			es, err := ParseHTTP(http.Header{"Content-Type": {MediaTypeStructuredJSON}}, got)
			if err != nil || len(es) != 1 || !es[0].Equal(tt.e) {
				t.Errorf("round trip: %+v, %v", es, err)
			}
		})
	}
}

func TestMarshalStructuredInvalid(t *testing.T) {
	e := validEvent()
	e.Time = "nope"
	if _, err := MarshalStructured(e); !errors.Is(err, ErrInvalid) {
		t.Fatalf("MarshalStructured(invalid) = %v, want ErrInvalid", err)
	}
	if _, err := MarshalBatch([]*Event{validEvent(), e}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("MarshalBatch(invalid) = %v, want ErrInvalid", err)
	}
}

func TestMarshalBatch(t *testing.T) {
	b, err := MarshalBatch(nil)
	if err != nil || string(b) != "[]" {
		t.Fatalf("empty batch: %s, %v", b, err)
	}
	a, c := validEvent(), validEvent()
	c.ID = "second"
	c.DataContentType = "application/cloudevents+json" // a nested event as JSON data
	c.Data = []byte(`{"specversion":"1.0"}`)
	b, err = MarshalBatch([]*Event{a, c})
	if err != nil {
		t.Fatal(err)
	}
	es, err := ParseHTTP(http.Header{"Content-Type": {MediaTypeBatchJSON}}, b)
	if err != nil || len(es) != 2 || !es[0].Equal(a) || !es[1].Equal(c) {
		t.Fatalf("round trip: %+v, %v (%s)", es, err, b)
	}
}

func TestAppendJSONStringMatchesEncodingJSON(t *testing.T) {
	for _, s := range []string{"", "plain", "q\"\\", "\x00\x01\x1f", "\t\r\n", "é€😀", "\u2028\u2029", "bad\xff", "<>&"} {
		got := appendJSONString(nil, s)
		var back string
		if err := json.Unmarshal(got, &back); err != nil {
			t.Errorf("appendJSONString(%q) = %s: %v", s, got, err)
			continue
		}
		want := s
		if s == "bad\xff" {
			want = "bad\uFFFD"
		}
		if back != want {
			t.Errorf("appendJSONString(%q) decodes to %q", s, back)
		}
	}
}

func TestForEachMemberTricky(t *testing.T) {
	obj := []byte(` { "a\u0062" : "x" , "d":{"s":"}]\"{"},"e":[1,{"f":"]"}],"n":-1.5e3,"t":true,"z":null } `)
	var got []string
	err := forEachMember(obj, func(key, raw []byte) error {
		got = append(got, string(key)+"="+string(raw))
		return nil
	})
	want := []string{`ab="x"`, `d={"s":"}]\"{"}`, `e=[1,{"f":"]"}]`, `n=-1.5e3`, `t=true`, `z=null`}
	if err != nil || len(got) != len(want) {
		t.Fatalf("got %q, %v", got, err)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("member %d = %s, want %s", i, got[i], want[i])
		}
	}
	// Not valid JSON: the scanner must report an error, never panic or loop.
	for _, bad := range []string{``, `{`, `{"a"`, `{"a":`, `{"a":"x`, `{"a" 1}`, `[`, `{"a":[}`, `{"a":1,`} {
		if err := forEachMember([]byte(bad), func(_, _ []byte) error { return nil }); err == nil {
			t.Errorf("forEachMember(%q) = nil, want error", bad)
		}
	}
	var n int
	if err := forEachElement([]byte(` [ {"a":"]"} , 2 ,[3]] `), func(int, []byte) error { n++; return nil }); err != nil || n != 3 {
		t.Errorf("forEachElement: %d elements, %v", n, err)
	}
}

func TestJSONString(t *testing.T) {
	for raw, want := range map[string]string{`"plain"`: "plain", `"a\"b"`: `a"b`, `"\u00e9\n"`: "é\n", `""`: ""} {
		if got, ok := jsonString([]byte(raw)); !ok || got != want {
			t.Errorf("jsonString(%s) = %q, %v", raw, got, ok)
		}
	}
	for _, raw := range []string{`5`, `"`, `null`, `"a"b"`} {
		if _, ok := jsonString([]byte(raw)); ok {
			t.Errorf("jsonString(%s) accepted", raw)
		}
	}
}
