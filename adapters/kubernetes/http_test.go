package kubernetes

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/eventgate/eventgate/adapters"
	"github.com/eventgate/eventgate/gateway/resources"
)

// apiServer is a scripted API server for /api/v1/namespaces/default/events: each list and each watch
// answers with the next step of the script, the way client-go's reflector sees a real one.
type apiServer struct {
	lists   [][]*corev1.Event     // the i-th list returns lists[i] (the last one repeats)
	listRVs []string              // and that list's resourceVersion
	watches [][]metav1.WatchEvent // the i-th watch streams watches[i], then closes, unless it is the last
	nList   atomic.Int32
	nWatch  atomic.Int32
	// lastWatch is closed when the last scripted watch has streamed its events.
	lastWatch chan struct{}
	once      sync.Once
}

func (s *apiServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/api/v1/namespaces/default/events" {
		http.NotFound(w, r)
		return
	}
	q := r.URL.Query()
	if q.Get("watch") != "true" && q.Get("watch") != "1" {
		i := min(int(s.nList.Add(1))-1, len(s.lists)-1)
		list := corev1.EventList{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "EventList"},
			ListMeta: metav1.ListMeta{ResourceVersion: s.listRVs[i]}}
		for _, e := range s.lists[i] {
			list.Items = append(list.Items, *e)
		}
		writeJSON(w, http.StatusOK, list)
		return
	}
	if q.Get("sendInitialEvents") == "true" {
		// An API server without streaming lists: the reflector falls back to list + watch.
		writeJSON(w, http.StatusBadRequest, metav1.Status{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Status"},
			Status: metav1.StatusFailure, Reason: metav1.StatusReasonBadRequest, Code: http.StatusBadRequest,
			Message: "sendInitialEvents is not supported"})
		return
	}
	i := int(s.nWatch.Add(1)) - 1
	if i >= len(s.watches) {
		// Past the script: keep the watch open and quiet until the client leaves.
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		<-r.Context().Done()
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	enc := json.NewEncoder(w)
	for _, ev := range s.watches[i] {
		if err := enc.Encode(ev); err != nil {
			return
		}
		w.(http.Flusher).Flush()
	}
	if i == len(s.watches)-1 {
		s.once.Do(func() { close(s.lastWatch) })
		<-r.Context().Done()
	}
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func watchEvent(t *testing.T, typ string, obj runtime.Object) metav1.WatchEvent {
	t.Helper()
	raw, err := json.Marshal(obj)
	if err != nil {
		t.Fatal(err)
	}
	return metav1.WatchEvent{Type: typ, Object: runtime.RawExtension{Raw: raw}}
}

// writeKubeconfig points KUBECONFIG at server, so New takes client-go's real configuration path.
func writeKubeconfig(t *testing.T, server string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "config")
	cfg := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: test
  cluster: {server: %q}
contexts:
- name: test
  context: {cluster: test, user: test}
current-context: test
users:
- name: test
  user: {token: test-token}
`, server)
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	t.Setenv("KUBECONFIG", path)
}

// A watch that expires (410 Gone, as an ERROR event) forces a relist; nothing already sent is sent
// again, and what changed while the watch was down is sent once.
func TestRelistAfterGoneNeverSendsTwice(t *testing.T) {
	begin := time.Now()
	at := func(d time.Duration) time.Time { return begin.Add(d) }
	old := k8sEventObj("old", "uid-old", "5", 4, at(-time.Hour))
	e1 := k8sEventObj("e1", "uid-1", "10", 1, at(time.Second))
	e2a := k8sEventObj("e2", "uid-2", "11", 1, at(2*time.Second))
	e2b := k8sEventObj("e2", "uid-2", "12", 2, at(3*time.Second)) // count bumped
	e3 := k8sEventObj("e3", "uid-3", "13", 1, at(4*time.Second))  // created while the watch was down
	e3b := k8sEventObj("e3", "uid-3", "14", 2, at(5*time.Second)) // after the relist
	gone := &metav1.Status{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Status"}, Status: metav1.StatusFailure,
		Reason: metav1.StatusReasonExpired, Code: http.StatusGone, Message: "too old resource version: 10 (12)"}

	srv := &apiServer{
		lists:   [][]*corev1.Event{{old, e1}, {old, e1, e2b, e3}},
		listRVs: []string{"10", "13"},
		watches: [][]metav1.WatchEvent{
			{watchEvent(t, "ADDED", e2a), watchEvent(t, "MODIFIED", e2b), watchEvent(t, "ERROR", gone)},
			{watchEvent(t, "MODIFIED", e3b)},
		},
		lastWatch: make(chan struct{}),
	}
	ts := httptest.NewServer(srv)
	t.Cleanup(ts.Close)
	writeKubeconfig(t, ts.URL)

	sink := newSink()
	a := start(t, eventSource(KindKubernetesEventSource, resources.ModeResource), adapters.Deps{Sink: sink},
		settings{start: begin})
	if a.set.host != ts.URL {
		t.Errorf("host from kubeconfig = %q, want %q", a.set.host, ts.URL)
	}

	want := []string{"uid-1/10", "uid-2/11", "uid-2/12", "uid-3/13", "uid-3/14"}
	for _, id := range want {
		if e := sink.Next(t); e.ID != id {
			t.Fatalf("got %s, want %s (sent so far: %v)", e.ID, id, sink.IDs())
		}
	}
	select {
	case <-srv.lastWatch:
	case <-time.After(20 * time.Second):
		t.Fatal("the informer never rewatched after the relist")
	}
	// The single sender sends in queue order, and uid-3/14 came last on the wire: any duplicate
	// from the relist would have been sent before it.
	if ids := sink.IDs(); !slices.Equal(ids, want) {
		t.Errorf("sent %v, want %v", ids, want)
	}
	if n := srv.nList.Load(); n < 2 {
		t.Errorf("lists = %d, want a relist after 410", n)
	}
}
