package filter

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	sqlerrors "github.com/cloudevents/sdk-go/sql/v2/errors"
	"gopkg.in/yaml.v3"

	"github.com/eventgate/eventgate/gateway/event"
)

// cesqlModule is the CESQL module whose TCK the test runs; go.mod holds the same version.
const cesqlModule = "github.com/cloudevents/sdk-go/sql/v2@v2.16.2"

// tckFile is one file of the CESQL TCK (test/tck/*.yaml in the module).
type tckFile struct {
	Name  string    `yaml:"name"`
	Tests []tckCase `yaml:"tests"`
}

type tckCase struct {
	Name           string               `yaml:"name"`
	Expression     string               `yaml:"expression"`
	Result         yaml.Node            `yaml:"result"`
	Error          string               `yaml:"error"`
	Event          map[string]yaml.Node `yaml:"event"`
	EventOverrides map[string]yaml.Node `yaml:"eventOverrides"`
}

// tckDir finds the TCK in the module cache (the module is a dependency, so it is there once the
// build has run).
func tckDir(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOMODCACHE").Output()
	if err != nil {
		t.Fatalf("go env GOMODCACHE: %v", err)
	}
	dir := filepath.Join(strings.TrimSpace(string(out)), filepath.FromSlash(cesqlModule), "test", "tck")
	if _, err := os.Stat(dir); err != nil {
		t.Fatalf("CESQL TCK not found (run `go mod download %s`): %v", cesqlModule, err)
	}
	return dir
}

// tckBase is the event of a case that gives none, with the attributes the TCK's cases read
// (the SDK's FullEvent, as its TCK runner uses, with extension values in their wire form).
func tckBase() *event.Event {
	return &event.Event{
		ID: "full-event", Source: "http://example.com/source", SpecVersion: "1.0", Type: "com.example.FullEvent",
		Subject: "topic", Time: "2020-03-21T12:34:56.78Z", DataSchema: "http://example.com/schema",
		DataContentType: "text/json",
		Extensions: map[string]string{"exbool": "true", "exint": "42", "exstring": "exstring",
			"exbinary": "AAECAw==", "exurl": "http://example.com/source", "extime": "2020-03-21T12:34:56.78Z"},
		Data: []byte(`"hello"`),
	}
}

// tckEvent builds a case's input event as eventgate holds it: every attribute in its string form, as
// the HTTP and Kafka bindings carry it.
func tckEvent(tc *tckCase) *event.Event {
	e := tckBase()
	if tc.Event != nil {
		e = &event.Event{}
	}
	set := func(k string, n yaml.Node) {
		v := n.Value
		switch k {
		case "specversion":
			e.SpecVersion = v
		case "id":
			e.ID = v
		case "source":
			e.Source = v
		case "type":
			e.Type = v
		case "subject":
			e.Subject = v
		case "time":
			e.Time = v
		case "dataschema":
			e.DataSchema = v
		case "datacontenttype":
			e.DataContentType = v
		case "data":
			e.Data = []byte(v)
		default:
			e.SetExtension(k, v)
		}
	}
	for k, n := range tc.Event {
		set(k, n)
	}
	for k, n := range tc.EventOverrides {
		set(k, n)
	}
	return e
}

// expected is a case's result as the CESQL runtime returns it: bool, int32 or string; nil when absent.
func (tc *tckCase) expected(t *testing.T) any {
	n := tc.Result
	switch {
	case n.Kind == 0:
		return nil
	case n.Tag == "!!bool":
		return n.Value == "true"
	case n.Tag == "!!int":
		i, err := strconv.ParseInt(n.Value, 0, 32)
		if err != nil {
			t.Fatalf("result %q: %v", n.Value, err)
		}
		return int32(i)
	default:
		return n.Value
	}
}

// wireForm lists the cases whose input sets an extension to a boolean or an integer value. eventgate
// carries extensions in their wire form, as strings (so does every CloudEvents binding), so reading
// such an extension gives its string form: the case runs, and expects that string.
var wireForm = map[string]bool{
	"Access to optional boolean extension": true,
	"Access to optional integer extension": true,
}

func errorKind(kind string, err error) bool {
	switch kind {
	case "parse":
		return sqlerrors.IsParseError(err)
	case "math":
		return sqlerrors.IsMathError(err)
	case "cast":
		return sqlerrors.IsCastError(err)
	case "missingFunction":
		return sqlerrors.IsMissingFunctionError(err)
	case "functionEvaluation":
		return sqlerrors.IsFunctionEvaluationError(err)
	case "missingAttribute":
		return sqlerrors.IsMissingAttributeError(err)
	case "generic":
		return sqlerrors.IsGenericError(err)
	}
	return false
}

// TestCESQLTCK runs every case of the CESQL TCK that ships in the module through eventgate's filter
// code path: the expression compiled as a trigger's cesql filter, evaluated against the case's event
// as eventgate holds it. Each case checks the runtime's result and error kind, and that the filter
// passes the event exactly when the result is true with no error.
func TestCESQLTCK(t *testing.T) {
	dir := tckDir(t)
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no TCK files in %s (%v)", dir, err)
	}
	total := 0
	for _, path := range files {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		var f tckFile
		if err := yaml.Unmarshal(data, &f); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if len(f.Tests) == 0 {
			t.Fatalf("%s: no cases", path)
		}
		total += len(f.Tests)
		t.Run(filepath.Base(path), func(t *testing.T) {
			for i := range f.Tests {
				tc := &f.Tests[i]
				t.Run(tc.Name, func(t *testing.T) { runTCKCase(t, tc) })
			}
		})
	}
	t.Logf("%d TCK cases in %d files", total, len(files))
}

func runTCKCase(t *testing.T, tc *tckCase) {
	f, err := Compile(nil, []Spec{{CESQL: tc.Expression}})
	if tc.Error == "parse" {
		if err == nil || !errors.Is(err, ErrInvalid) {
			t.Fatalf("%q: Compile = %v, want a parse error", tc.Expression, err)
		}
		if perr := ParseCESQL(tc.Expression); perr == nil || !sqlerrors.IsParseError(perr) {
			t.Fatalf("%q: ParseCESQL = %v, want a parse error", tc.Expression, perr)
		}
		return
	}
	if err != nil {
		t.Fatalf("%q: Compile: %v", tc.Expression, err)
	}
	e := tckEvent(tc)
	got, gerr := f.root.(allNode)[0].(cesqlNode).evaluate(e)
	if tc.Error != "" {
		if gerr == nil || !errorKind(tc.Error, gerr) {
			t.Fatalf("%q: error %v, want a %s error", tc.Expression, gerr, tc.Error)
		}
	} else if gerr != nil {
		t.Fatalf("%q: unexpected error %v", tc.Expression, gerr)
	}
	want := tc.expected(t)
	if wireForm[tc.Name] {
		want = tc.Result.Value
	}
	if got != want {
		t.Fatalf("%q: result %#v, want %#v", tc.Expression, got, want)
	}
	wantPass := gerr == nil && want == true
	if pass := f.Pass(e); pass != wantPass {
		t.Fatalf("%q: Pass = %v, want %v (result %#v, error %v)", tc.Expression, pass, wantPass, got, gerr)
	}
}
