package github

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/eventgate/eventgate/adapters"
)

// FuzzWebhook feeds the webhook arbitrary signatures, bodies, content types and event names.
//
// Invariants:
//   - ServeHTTP never panics and answers one of the documented statuses;
//   - an event reaches the sink only when the signature is valid for the body as received, and then
//     the answer is 202;
//   - every event that reaches the sink passes event.Validate, its data is a JSON object, and its id
//     is the delivery id.
func FuzzWebhook(f *testing.F) {
	push, err := os.ReadFile(filepath.Join("..", "..", "testdata", "github", "push.json"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(signature(testSecret, push), push, contentJSON, "push")
	f.Add(signature(testSecret, formBody(push)), formBody(push), contentForm, "push")
	f.Add(signature(testSecret, []byte(`{"issue":{"number":1e99}}`)), []byte(`{"issue":{"number":1e99}}`), contentJSON, "issues")
	f.Add(signature(testSecret, []byte(`{"ref":"\u0000"}`)), []byte(`{"ref":"\u0000"}`), contentJSON, "push")
	f.Add(signature(testSecret, []byte("payload=%7B%7D")), []byte("payload=%7B%7D"), contentForm+"; charset=utf-8", "release")
	f.Add("sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17", []byte("Hello, World!"), contentJSON, "ping")
	f.Add("", []byte(`{}`), "", "")
	f.Add("sha256=zz", []byte(`{"a":`), "text/plain; x", "Push")

	secrets := writeSecret(f, testSecret)
	allowed := map[int]bool{
		http.StatusAccepted: true, http.StatusNoContent: true, http.StatusBadRequest: true,
		http.StatusUnauthorized: true, http.StatusUnsupportedMediaType: true,
	}
	f.Fuzz(func(t *testing.T, sig string, body []byte, contentType, kind string) {
		sink := &recordingSink{}
		w, err := newWebhook(testSource(), adapters.Deps{Sink: sink, SecretsDir: secrets}, settings{maxBody: 1 << 16})
		if err != nil {
			t.Fatal(err)
		}
		r := httptest.NewRequest(http.MethodPost, "/sources/shop/repo-events", bytes.NewReader(body))
		r.Header[HeaderSignature] = []string{sig}
		r.Header["Content-Type"] = []string{contentType}
		r.Header[HeaderEvent] = []string{kind}
		r.Header[HeaderDelivery] = []string{"fuzz-delivery"}
		rec := httptest.NewRecorder()
		w.ServeHTTP(rec, r)

		if !allowed[rec.Code] && !(rec.Code == http.StatusRequestEntityTooLarge && len(body) > 1<<16) {
			t.Fatalf("status %d", rec.Code)
		}
		got := sink.got()
		if len(got) == 0 {
			return
		}
		if !validSignature([]byte(testSecret), body, sig) {
			t.Fatal("an event was produced for a delivery with an invalid signature")
		}
		if rec.Code != http.StatusAccepted || len(got) != 1 {
			t.Fatalf("status %d with %d events, want 202 with 1", rec.Code, len(got))
		}
		e := got[0]
		if err := e.Validate(); err != nil {
			t.Fatalf("produced an invalid event: %v", err)
		}
		if e.ID != "fuzz-delivery" || len(e.Data) == 0 {
			t.Fatalf("event id %q with %d bytes of data", e.ID, len(e.Data))
		}
		if _, err := payloadJSON(contentJSON, e.Data); err != nil {
			t.Fatalf("event data is not a JSON object: %v", err)
		}
	})
}
