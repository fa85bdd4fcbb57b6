package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// fakeAPIServer speaks just enough of the Kubernetes API for an Event informer in namespace default:
// an empty list, then one watch that streams the given Events and stays open.
func fakeAPIServer(t *testing.T, events ...string) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/v1/namespaces/default/events" {
			http.NotFound(w, r)
			return
		}
		q := r.URL.Query()
		w.Header().Set("Content-Type", "application/json")
		switch {
		case q.Get("watch") == "" || q.Get("watch") == "false":
			fmt.Fprint(w, `{"apiVersion":"v1","kind":"EventList","metadata":{"resourceVersion":"1"},"items":[]}`)
		case q.Get("sendInitialEvents") == "true":
			w.WriteHeader(http.StatusBadRequest) // no streaming lists here: client-go falls back to list + watch
			fmt.Fprint(w, `{"apiVersion":"v1","kind":"Status","status":"Failure","reason":"BadRequest","code":400}`)
		default:
			for _, e := range events {
				fmt.Fprintf(w, `{"type":"ADDED","object":%s}`+"\n", e)
				w.(http.Flusher).Flush()
			}
			<-r.Context().Done()
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

// TestSeedWalkthrough runs the seed's manifests as they are (testdata/knative-eventing-demo) against
// a Kubernetes API: a cluster Event reaches the demo service, as in the seed's example 4-7.
func TestSeedWalkthrough(t *testing.T) {
	demo := newSubscriber(t)
	when := time.Now().Add(2 * time.Second).UTC().Format(time.RFC3339)
	k8sEvent := fmt.Sprintf(`{"apiVersion":"v1","kind":"Event","metadata":{"name":"knative-eventing-demo-00001.15761326c1edda18",`+
		`"namespace":"default","uid":"6b1c8a4e-0001","resourceVersion":"2"},"involvedObject":{"apiVersion":"v1","kind":"Pod",`+
		`"namespace":"default","name":"knative-eventing-demo-00001-deployment-abc"},"reason":"Started","message":"Started container",`+
		`"count":1,"type":"Normal","firstTimestamp":%q,"lastTimestamp":%q}`, when, when)
	api := fakeAPIServer(t, k8sEvent)
	kubeconfig := filepath.Join(t.TempDir(), "config")
	os.WriteFile(kubeconfig, []byte(fmt.Sprintf(`apiVersion: v1
kind: Config
clusters: [{name: test, cluster: {server: %q}}]
contexts: [{name: test, context: {cluster: test, user: test}}]
current-context: test
users: [{name: test, user: {token: test}}]
`, api.URL)), 0o600)

	g := startGatewayEnv(t, []string{"KUBECONFIG=" + kubeconfig, "KUBERNETES_SERVICE_HOST="},
		"-f", "../../testdata/knative-eventing-demo",
		"--set", "addressBook.default/knative-eventing-demo="+demo.url+"/")
	got := demo.waitFor(t, "/", 1)[0]
	if got.header.Get("Ce-Type") != "dev.knative.k8s.event" {
		t.Errorf("type %q, want dev.knative.k8s.event", got.header.Get("Ce-Type"))
	}
	if got.header.Get("Ce-Id") == "" || !strings.Contains(got.header.Get("Ce-Source"), "/namespaces/default/pods/knative-eventing-demo-00001-deployment-abc") {
		t.Errorf("id %q source %q", got.header.Get("Ce-Id"), got.header.Get("Ce-Source"))
	}
	var data struct {
		Metadata struct{ Name, Namespace string } `json:"metadata"`
		Reason   string                           `json:"reason"`
	}
	if err := json.Unmarshal([]byte(got.body), &data); err != nil {
		t.Fatalf("data is not the Event as JSON: %v: %s", err, got.body)
	}
	if data.Metadata.Name != "knative-eventing-demo-00001.15761326c1edda18" || data.Metadata.Namespace != "default" || data.Reason != "Started" {
		t.Errorf("data = %+v", data)
	}
	t.Logf("the demo service received: %.120s...", got.body)
	if err := g.stop(10 * time.Second); err != nil {
		t.Fatalf("exit: %v", err)
	}
}
