package resources

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzDecode feeds arbitrary bytes to Decode. Invariants:
//   - Decode never panics;
//   - it returns exactly one of a Set and an error;
//   - every problem (one per line of the joined error) names the file;
//   - an accepted Set re-validates on its own: every resource passes Validate's per-resource rules, and
//     when the set also passes the cross-resource rules, a second Validate agrees;
//   - an accepted trigger's filter compiles;
//   - Describe never panics on an accepted Set and gives one line per resource.
//
// Seeds: every file under testdata, and the broker manifests in this package's testdata/brokers.
func FuzzDecode(f *testing.F) {
	for _, dir := range []string{"knative-eventing-demo", "manifests/valid", "manifests/invalid"} {
		paths, _ := filepath.Glob(filepath.Join(testdata, dir, "*.yaml"))
		for _, p := range paths {
			b, err := os.ReadFile(p)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(b)
		}
	}
	local, _ := filepath.Glob(filepath.Join("testdata", "brokers", "*.yaml"))
	for _, p := range local {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("apiVersion: v1\nkind: [x\n"))
	f.Add([]byte("a: &a [*a]\n"))
	const file = "fuzz.yaml"
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := Decode(file, data, Options{})
		if (s == nil) == (err == nil) {
			t.Fatalf("Decode returned set %v and error %v", s, err)
		}
		if err != nil {
			for _, line := range strings.Split(err.Error(), "\n") {
				if !strings.HasPrefix(line, file+": ") {
					t.Fatalf("problem does not name the file: %q", line)
				}
			}
			return
		}
		for _, r := range s.resources() {
			p := &problems{m: r.meta()}
			r.validate(p)
			if len(p.errs) > 0 {
				t.Fatalf("accepted resource fails validation: %v", errors.Join(p.errs...))
			}
		}
		if first := s.Validate(); first == nil {
			if again := s.Validate(); again != nil {
				t.Fatalf("Validate disagrees with itself: %v", again)
			}
		}
		for _, tr := range s.Triggers {
			if _, err := tr.Filter(); err != nil {
				t.Fatalf("accepted trigger's filter does not compile: %v", err)
			}
		}
		lines := Describe(s, &Resolver{IngressURL: "http://127.0.0.1:8080"})
		if n := len(s.Channels) + len(s.Subscriptions) + len(s.Sources) + len(s.Brokers) + len(s.Triggers) +
			len(s.Unmanaged); len(lines) != n {
			t.Fatalf("Describe gave %d lines for %d resources", len(lines), n)
		}
	})
}
