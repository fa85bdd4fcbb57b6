package github

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eventgate/eventgate/adapters"
	"github.com/eventgate/eventgate/gateway/event"
	"github.com/eventgate/eventgate/gateway/resources"
)

// GitHub documents this vector for X-Hub-Signature-256.
func TestSignatureGitHubTestVector(t *testing.T) {
	const want = "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
	secret, body := []byte("It's a Secret to Everybody"), []byte("Hello, World!")
	if got := hex.EncodeToString(sign(secret, body)); got != want {
		t.Fatalf("sign = %s, want %s", got, want)
	}
	for _, tc := range []struct {
		header string
		ok     bool
	}{
		{"sha256=" + want, true},
		{"sha256=" + strings.ToUpper(want), true}, // hex is case-insensitive
		{want, false},                             // no algorithm prefix
		{"sha1=" + want, false},
		{"sha256=" + want[:63] + "f", false}, // last digit changed
		{"sha256=" + want[:62], false},       // short
		{"sha256=" + want + "00", false},     // long
		{"sha256=" + strings.Repeat("zz", 32), false},
		{"", false},
	} {
		if got := validSignature(secret, body, tc.header); got != tc.ok {
			t.Errorf("validSignature(%q) = %v, want %v", tc.header, got, tc.ok)
		}
	}
	if validSignature([]byte("another secret"), body, "sha256="+want) {
		t.Error("a signature made with another secret was accepted")
	}
}

func TestDeliveriesBecomeCloudEvents(t *testing.T) {
	cases := []struct {
		file, kind, subject string
	}{
		{"push.json", "push", "refs/heads/main"},
		{"pull_request.json", "pull_request", "42"},
		{"release.json", "release", "v1.4.0"},
		{"issues.json", "issues", "17"},
	}
	for _, tc := range cases {
		payload := readPayload(t, tc.file)
		for _, enc := range []struct {
			name, contentType string
			body              []byte
		}{
			{"json", contentJSON, payload},
			{"form", contentForm, formBody(payload)},
		} {
			t.Run(tc.kind+"/"+enc.name, func(t *testing.T) {
				h := newHarness(t, testSource(), settings{})
				code := h.serve(webhookCall{kind: tc.kind, id: "d-" + tc.kind, contentType: enc.contentType, body: enc.body})
				if code != http.StatusAccepted {
					t.Fatalf("status %d, want 202", code)
				}
				got := h.sink.got()
				if len(got) != 1 {
					t.Fatalf("%d events, want 1", len(got))
				}
				want := &event.Event{
					ID: "d-" + tc.kind, Source: "https://github.com/example/shop", SpecVersion: "1.0",
					Type: "dev.knative.source.github." + tc.kind, DataContentType: "application/json",
					Subject: tc.subject, Time: "2024-05-14T10:00:00Z", Data: payload,
				}
				if !got[0].Equal(want) {
					t.Errorf("event\n got %+v\nwant %+v", got[0], want)
				}
				if err := got[0].Validate(); err != nil {
					t.Errorf("produced event is invalid: %v", err)
				}
				if n := h.count(adapters.OutcomeAccepted); n != 1 {
					t.Errorf("accepted count %v, want 1", n)
				}
			})
		}
	}
}

func TestSubjectPerEventType(t *testing.T) {
	cases := []struct {
		kind, payload, want string
	}{
		{"pull_request", `{"number":7,"pull_request":{"number":7}}`, "7"},
		{"pull_request", `{"number":8}`, "8"},
		{"issues", `{"issue":{"number":3}}`, "3"},
		{"issue_comment", `{"issue":{"number":12},"comment":{"id":99}}`, "12"},
		{"push", `{"ref":"refs/tags/v2"}`, "refs/tags/v2"},
		{"create", `{"ref":"feature-x","ref_type":"branch"}`, "feature-x"},
		{"delete", `{"ref":"v0.1","ref_type":"tag"}`, "v0.1"},
		{"release", `{"release":{"tag_name":"v3.0.0"}}`, "v3.0.0"},
		{"star", `{"ref":"refs/heads/main","number":1}`, ""},
		{"issues", `{"issue":{"number":"3"}}`, ""},  // wrong type: no subject
		{"issues", `{"issue":{"number":-3}}`, ""},   // not an issue number
		{"release", `{"release":"v1"}`, ""},         // not an object
		{"push", `{"ref":null}`, ""},                // null
		{"pull_request", `{"pull_request":[]}`, ""}, // not an object, no top-level number
	}
	for _, tc := range cases {
		if got := subject(tc.kind, []byte(tc.payload)); got != tc.want {
			t.Errorf("subject(%s, %s) = %q, want %q", tc.kind, tc.payload, got, tc.want)
		}
	}
}

func TestSubjectThatIsNotAValidAttributeIsDropped(t *testing.T) {
	h := newHarness(t, testSource(), settings{})
	body := []byte(`{"ref":"refs/heads/\u0001bad"}`)
	if code := h.serve(webhookCall{kind: "push", id: "ctl", body: body}); code != http.StatusAccepted {
		t.Fatalf("status %d, want 202", code)
	}
	if got := h.sink.got(); len(got) != 1 || got[0].Subject != "" {
		t.Fatalf("events %+v, want one without a subject", got)
	}
}

func TestBadOrMissingSignatureIs401(t *testing.T) {
	payload := readPayload(t, "push.json")
	h := newHarness(t, testSource(), settings{})
	for name, d := range map[string]webhookCall{
		"missing":          {signature: "-"},
		"empty":            {signature: "sha256="},
		"other secret":     {signature: signature("not the secret", payload)},
		"other body":       {signature: signature(testSecret, []byte(`{"ref":"refs/heads/evil"}`))},
		"sha1 only":        {signature: "sha1=" + strings.Repeat("ab", 20)},
		"not hex":          {signature: "sha256=" + strings.Repeat("g", 64)},
		"trailing garbage": {signature: signature(testSecret, payload) + " "},
	} {
		d.kind, d.id, d.body = "push", "d-"+name, payload
		if code := h.serve(d); code != http.StatusUnauthorized {
			t.Errorf("%s: status %d, want 401", name, code)
		}
	}
	if got := h.sink.got(); len(got) != 0 {
		t.Fatalf("%d events produced from unauthenticated deliveries", len(got))
	}
	// The signature covers the body as received: a form body signed as JSON is refused.
	d := webhookCall{kind: "push", id: "form", contentType: contentForm, body: formBody(payload), signature: signature(testSecret, payload)}
	if code := h.serve(d); code != http.StatusUnauthorized {
		t.Errorf("form body signed over its payload: status %d, want 401", code)
	}
}

func TestPingIs204WithoutEvent(t *testing.T) {
	h := newHarness(t, testSource(), settings{})
	body := []byte(`{"zen":"Keep it logically awesome.","hook_id":12345678}`)
	if code := h.serve(webhookCall{kind: "ping", id: "p1", body: body}); code != http.StatusNoContent {
		t.Fatalf("status %d, want 204", code)
	}
	if len(h.sink.got()) != 0 {
		t.Fatal("ping produced an event")
	}
	if n := h.count(adapters.OutcomeSkipped); n != 1 {
		t.Errorf("skipped count %v, want 1", n)
	}
}

func TestEventTypesFilter(t *testing.T) {
	src := testSource()
	src.GitHub.EventTypes = []string{"push"}
	h := newHarness(t, src, settings{})
	if code := h.serve(webhookCall{kind: "issues", id: "i1", body: readPayload(t, "issues.json")}); code != http.StatusNoContent {
		t.Fatalf("filtered type: status %d, want 204", code)
	}
	if len(h.sink.got()) != 0 {
		t.Fatal("a type not asked for produced an event")
	}
	if n := h.count(adapters.OutcomeSkipped); n != 1 {
		t.Errorf("skipped count %v, want 1", n)
	}

	// An empty list asks for everything.
	src = testSource()
	src.GitHub.EventTypes = nil
	h = newHarness(t, src, settings{})
	if code := h.serve(webhookCall{kind: "star", id: "s1", body: []byte(`{"action":"created"}`)}); code != http.StatusAccepted {
		t.Fatalf("no filter: status %d, want 202", code)
	}
}

func TestMalformedDeliveriesAre4xx(t *testing.T) {
	h := newHarness(t, testSource(), settings{})
	payload := readPayload(t, "push.json")
	cases := []struct {
		name string
		d    webhookCall
		want int
	}{
		{"no event header", webhookCall{id: "x", body: payload}, http.StatusBadRequest},
		{"no delivery header", webhookCall{kind: "push", body: payload}, http.StatusBadRequest},
		{"event name not GitHub's", webhookCall{kind: "Push Event", id: "x", body: payload}, http.StatusBadRequest},
		{"delivery id too long", webhookCall{kind: "push", id: strings.Repeat("a", 201), body: payload}, http.StatusBadRequest},
		{"delivery id with control char", webhookCall{kind: "push", id: "a\x01b", body: payload}, http.StatusBadRequest},
		{"not json", webhookCall{kind: "push", id: "x", body: []byte("ref=main")}, http.StatusBadRequest},
		{"json array", webhookCall{kind: "push", id: "x", body: []byte(`[1,2]`)}, http.StatusBadRequest},
		{"form without payload", webhookCall{kind: "push", id: "x", contentType: contentForm, body: []byte("other=1")}, http.StatusBadRequest},
		{"form with bad escape", webhookCall{kind: "push", id: "x", contentType: contentForm, body: []byte("payload=%zz")}, http.StatusBadRequest},
		{"xml", webhookCall{kind: "push", id: "x", contentType: "application/xml", body: []byte("<a/>")}, http.StatusUnsupportedMediaType},
		{"json with charset", webhookCall{kind: "push", id: "cs", contentType: "application/json; charset=utf-8", body: payload}, http.StatusAccepted},
	}
	for _, tc := range cases {
		if code := h.serve(tc.d); code != tc.want {
			t.Errorf("%s: status %d, want %d", tc.name, code, tc.want)
		}
	}
	if got := h.sink.got(); len(got) != 1 {
		t.Errorf("%d events, want only the one from the well-formed delivery", len(got))
	}
	if n := h.count(adapters.OutcomeInvalid); n != float64(len(cases)-1) {
		t.Errorf("invalid count %v, want %d", n, len(cases)-1)
	}
}

func TestOnlyPost(t *testing.T) {
	h := newHarness(t, testSource(), settings{})
	rec := httptest.NewRecorder()
	h.w.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/sources/shop/repo-events", nil))
	if rec.Code != http.StatusMethodNotAllowed || rec.Header().Get("Allow") != http.MethodPost {
		t.Fatalf("GET: status %d Allow %q, want 405 POST", rec.Code, rec.Header().Get("Allow"))
	}
}

func TestRedeliveryIsNotProducedTwice(t *testing.T) {
	h := newHarness(t, testSource(), settings{dedupWindow: time.Minute})
	d := webhookCall{kind: "push", id: "72d3162e-cc78-11e3-81ab-4c9367dc0958", body: readPayload(t, "push.json")}
	for i := range 3 {
		if code := h.serve(d); code != http.StatusAccepted {
			t.Fatalf("delivery %d: status %d, want 202", i, code)
		}
		h.clock.advance(20 * time.Second)
	}
	if n := len(h.sink.got()); n != 1 {
		t.Fatalf("%d events after 3 deliveries of one id, want 1", n)
	}
	if n := h.count(adapters.OutcomeSkipped); n != 2 {
		t.Errorf("skipped count %v, want 2", n)
	}
	// Another id is another event.
	d2 := d
	d2.id = "other"
	if code := h.serve(d2); code != http.StatusAccepted || len(h.sink.got()) != 2 {
		t.Fatalf("new id: status %d, %d events; want 202 and 2", code, len(h.sink.got()))
	}
	// Once the window has passed since acceptance, the id is produced again.
	h.clock.advance(time.Minute)
	if code := h.serve(d); code != http.StatusAccepted || len(h.sink.got()) != 3 {
		t.Fatalf("after the window: status %d, %d events; want 202 and 3", code, len(h.sink.got()))
	}
}

func TestDedupWindowDefaultAndOff(t *testing.T) {
	h := newHarness(t, testSource(), settings{})
	if h.w.seen.window != 10*time.Minute {
		t.Errorf("default window %v, want 10m", h.w.seen.window)
	}
	h = newHarness(t, testSource(), settings{dedupWindow: -1})
	d := webhookCall{kind: "push", id: "same", body: readPayload(t, "push.json")}
	h.serve(d)
	h.serve(d)
	if n := len(h.sink.got()); n != 2 {
		t.Fatalf("window off: %d events, want 2 (detection off)", n)
	}
}

func TestDedupMemoryIsBounded(t *testing.T) {
	h := newHarness(t, testSource(), settings{dedupCapacity: 2})
	body := readPayload(t, "push.json")
	for _, id := range []string{"a", "b", "c"} {
		h.serve(webhookCall{kind: "push", id: id, body: body})
	}
	if n := h.w.seen.size(); n != 2 {
		t.Fatalf("%d ids remembered, want 2", n)
	}
	// "a" was forgotten first: its redelivery is produced again; "c" is still a duplicate.
	h.serve(webhookCall{kind: "push", id: "a", body: body})
	h.serve(webhookCall{kind: "push", id: "c", body: body})
	if n := len(h.sink.got()); n != 4 {
		t.Fatalf("%d events, want 4", n)
	}
}

func TestSinkFailureIs503ThenRedeliverySucceeds(t *testing.T) {
	h := newHarness(t, testSource(), settings{})
	d := webhookCall{kind: "pull_request", id: "retry-me", body: readPayload(t, "pull_request.json")}
	h.sink.setFail(errSinkDown)
	if code := h.serve(d); code != http.StatusServiceUnavailable {
		t.Fatalf("sink down: status %d, want 503", code)
	}
	if n := h.count(adapters.OutcomeFailed); n != 1 {
		t.Errorf("failed count %v, want 1", n)
	}
	h.sink.setFail(nil)
	if code := h.serve(d); code != http.StatusAccepted {
		t.Fatalf("redelivery: status %d, want 202", code)
	}
	if got := h.sink.got(); len(got) != 1 || got[0].ID != "retry-me" {
		t.Fatalf("events %v, want the redelivered one", got)
	}
}

// blockingSink holds every Send until release is closed, announcing each on entered.
type blockingSink struct {
	recordingSink
	entered chan struct{}
	release chan struct{}
}

func (s *blockingSink) Send(ctx context.Context, e *event.Event) error {
	s.entered <- struct{}{}
	select {
	case <-s.release:
	case <-ctx.Done():
		return ctx.Err()
	}
	return s.recordingSink.Send(ctx, e)
}

func TestConcurrentRedeliveryWaitsForTheFirstAttempt(t *testing.T) {
	sink := &blockingSink{entered: make(chan struct{}, 2), release: make(chan struct{})}
	w, err := newWebhook(testSource(), adapters.Deps{Sink: sink, SecretsDir: writeSecret(t, testSecret)}, settings{})
	if err != nil {
		t.Fatal(err)
	}
	d := webhookCall{kind: "push", id: "dup", body: readPayload(t, "push.json")}
	codes := make([]int, 2)
	var wg sync.WaitGroup
	for i := range codes {
		wg.Go(func() {
			rec := httptest.NewRecorder()
			w.ServeHTTP(rec, d.request())
			codes[i] = rec.Code
		})
		if i == 0 {
			<-sink.entered // the first attempt is sending
		}
	}
	// The second request must wait for the first rather than send: once it is registered as waiting,
	// let the first finish.
	eventually(t, func() bool { return w.seen.waiting("dup") == 1 })
	close(sink.release)
	wg.Wait()
	if codes[0] != http.StatusAccepted || codes[1] != http.StatusAccepted {
		t.Fatalf("statuses %v, want both 202", codes)
	}
	if n := len(sink.got()); n != 1 {
		t.Fatalf("%d events, want 1", n)
	}
	select {
	case <-sink.entered:
		t.Fatal("the second delivery of the same id reached the sink")
	default:
	}
}

func TestBodyLimit(t *testing.T) {
	h := newHarness(t, testSource(), settings{maxBody: 1024})
	big := []byte(`{"pad":"` + strings.Repeat("x", 2048) + `"}`)
	if code := h.serve(webhookCall{kind: "push", id: "big", body: big}); code != http.StatusRequestEntityTooLarge {
		t.Fatalf("declared length over the limit: status %d, want 413", code)
	}
	// Without a declared length the limit is enforced while reading.
	r := webhookCall{kind: "push", id: "big", body: big}.request()
	r.ContentLength = -1
	if code := h.serveRequest(r); code != http.StatusRequestEntityTooLarge {
		t.Fatalf("chunked body over the limit: status %d, want 413", code)
	}
	ok := []byte(`{"pad":"` + strings.Repeat("x", 1024-10) + `"}`)
	if len(ok) != 1024 {
		t.Fatalf("test body is %d bytes", len(ok))
	}
	if code := h.serve(webhookCall{kind: "push", id: "fits", body: ok}); code != http.StatusAccepted {
		t.Fatalf("body at the limit: status %d, want 202", code)
	}
	if n := len(h.sink.got()); n != 1 {
		t.Fatalf("%d events, want 1", n)
	}
}

func TestDefaultBodyLimitIs25MB(t *testing.T) {
	h := newHarness(t, testSource(), settings{})
	const limit = 25 << 20
	if h.w.maxBody != limit {
		t.Fatalf("default limit %d, want %d", h.w.maxBody, limit)
	}
	r := httptest.NewRequest(http.MethodPost, "/sources/shop/repo-events", bytes.NewReader(make([]byte, limit+1)))
	r.Header.Set(HeaderEvent, "push")
	r.Header.Set(HeaderDelivery, "huge")
	r.ContentLength = -1 // read it, do not trust a declared length
	if code := h.serveRequest(r); code != http.StatusRequestEntityTooLarge {
		t.Fatalf("25 MB + 1 byte: status %d, want 413", code)
	}
	// A body of exactly the limit is read and goes on to the signature check.
	r = httptest.NewRequest(http.MethodPost, "/sources/shop/repo-events", bytes.NewReader(make([]byte, limit)))
	r.Header.Set(HeaderEvent, "push")
	r.Header.Set(HeaderDelivery, "huge")
	if code := h.serveRequest(r); code != http.StatusUnauthorized {
		t.Fatalf("25 MB unsigned: status %d, want 401", code)
	}
}

func TestNewRefusesUnsafeOrBrokenSources(t *testing.T) {
	deps := adapters.Deps{Sink: &recordingSink{}, SecretsDir: writeSecret(t, testSecret)}

	src := testSource()
	src.GitHub.SecretToken = nil
	if _, err := New(src, deps); err == nil || !strings.Contains(err.Error(), "no secretToken") {
		t.Errorf("no secret: err %v, want a refusal naming secretToken", err)
	}

	src = testSource()
	src.GitHub.SecretToken = &resources.SecretKeyRef{Name: "github", Key: "missing"}
	if _, err := New(src, deps); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing secret file: err %v, want fs.ErrNotExist", err)
	}

	if _, err := New(testSource(), adapters.Deps{Sink: &recordingSink{}, SecretsDir: writeSecret(t, "\n")}); err == nil {
		t.Error("empty secret accepted")
	}

	src = testSource()
	src.CEOverrides = map[string]string{"Not-An-Extension": "x"}
	if _, err := New(src, deps); !errors.Is(err, event.ErrInvalid) {
		t.Errorf("bad ceOverrides: err %v, want event.ErrInvalid", err)
	}

	if _, err := New(testSource(), adapters.Deps{SecretsDir: deps.SecretsDir}); err == nil {
		t.Error("no sink accepted")
	}
}

func TestSecretFileTrailingNewlineIsNotPartOfTheSecret(t *testing.T) {
	sink := &recordingSink{}
	w, err := newWebhook(testSource(), adapters.Deps{Sink: sink, SecretsDir: writeSecret(t, testSecret+"\n")}, settings{})
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	w.ServeHTTP(rec, webhookCall{kind: "push", id: "nl", body: readPayload(t, "push.json")}.request())
	if rec.Code != http.StatusAccepted {
		t.Fatalf("status %d, want 202", rec.Code)
	}
}

func TestUnauthenticatedSourceAcceptsUnsignedDeliveries(t *testing.T) {
	src := testSource()
	src.GitHub.SecretToken, src.GitHub.Unauthenticated = nil, true
	sink := &recordingSink{}
	w, err := newWebhook(src, adapters.Deps{Sink: sink}, settings{})
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	w.ServeHTTP(rec, webhookCall{kind: "push", id: "u", body: readPayload(t, "push.json"), signature: "-"}.request())
	if rec.Code != http.StatusAccepted || len(sink.got()) != 1 {
		t.Fatalf("status %d, %d events; want 202 and 1", rec.Code, len(sink.got()))
	}
}

func TestOrganisationSourceAndOverrides(t *testing.T) {
	src := testSource()
	src.GitHub.Repository = ""
	src.CEOverrides = map[string]string{"team": "payments"}
	h := newHarness(t, src, settings{})
	if code := h.serve(webhookCall{kind: "push", id: "org", body: readPayload(t, "push.json")}); code != http.StatusAccepted {
		t.Fatalf("status %d", code)
	}
	e := h.sink.got()[0]
	if e.Source != "https://github.com/example" || e.Extension("team") != "payments" {
		t.Fatalf("source %q, team %q; want https://github.com/example and payments", e.Source, e.Extension("team"))
	}
}

func TestNewIsAFactoryOfWebhooks(t *testing.T) {
	var f adapters.Factory = New
	a, err := f(testSource(), adapters.Deps{Sink: &recordingSink{}, SecretsDir: writeSecret(t, testSecret)})
	if err != nil {
		t.Fatal(err)
	}
	wh, ok := a.(adapters.Webhook)
	if !ok {
		t.Fatalf("New returned %T, not an adapters.Webhook", a)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- wh.Run(ctx) }()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after its context was cancelled")
	}
}
