package app

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/eventgate/eventgate/gateway/channel"
	"github.com/eventgate/eventgate/gateway/event"
)

// sseMessage is one Server-Sent Events message: its fields, or its comment.
type sseMessage struct {
	comment, id, event, data string
}

// readSSE reads messages from body onto the returned channel until body ends.
func readSSE(t *testing.T, resp *http.Response) <-chan sseMessage {
	t.Helper()
	out := make(chan sseMessage, 64)
	go func() {
		defer close(out)
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		var m sseMessage
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				out <- m
				m = sseMessage{}
			case strings.HasPrefix(line, ":"):
				m.comment = strings.TrimSpace(line[1:])
			default:
				k, v, _ := strings.Cut(line, ": ")
				switch k {
				case "id":
					m.id = v
				case "event":
					m.event = v
				case "data":
					m.data = v
				}
			}
		}
	}()
	return out
}

func nextSSE(t *testing.T, msgs <-chan sseMessage) sseMessage {
	t.Helper()
	select {
	case m, ok := <-msgs:
		if !ok {
			t.Fatal("the stream ended")
		}
		return m
	case <-time.After(10 * time.Second):
		t.Fatal("no message within 10s")
	}
	return sseMessage{}
}

func tailApp(t *testing.T) (*App, *httptest.Server, channel.Ref) {
	t.Helper()
	a := readyApp(t)
	ref := channel.Ref{Namespace: "default", Name: "orders"}
	if err := a.inmem.Ensure(context.Background(), channel.Spec{Ref: ref, Partitions: 2}); err != nil {
		t.Fatal(err)
	}
	a.router.set(ref, a.inmem)
	srv := httptest.NewServer(a.adminMux())
	t.Cleanup(srv.Close)
	return a, srv, ref
}

func TestTailStreamsEventsAsSSE(t *testing.T) {
	a, srv, ref := tailApp(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/tail/default/orders?type=order.created&maxData=8&filter="+
		url.QueryEscape("id <> 'a-4'"), nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("GET /tail = %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	msgs := readSSE(t, resp)
	if m := nextSSE(t, msgs); m.comment != "tailing default/orders" {
		t.Fatalf("first message %+v, want the tailing comment", m)
	}
	evs := []*event.Event{
		{ID: "a-1", Source: "/shop", SpecVersion: "1.0", Type: "order.created", DataContentType: "text/plain",
			Extensions: map[string]string{"partitionkey": "c-1"}, Data: []byte("héllo, world")},
		{ID: "a-2", Source: "/shop", SpecVersion: "1.0", Type: "order.shipped", Data: []byte("skip me")},
		{ID: "a-3", Source: "/shop", SpecVersion: "1.0", Type: "order.created", Data: []byte{0xff, 0x00, 0x01}},
		{ID: "a-4", Source: "/shop", SpecVersion: "1.0", Type: "order.created", Data: []byte("the filter drops me")},
	}
	if err := a.router.Publish(ctx, ref, evs); err != nil {
		t.Fatal(err)
	}
	got := map[string]TailEvent{}
	for len(got) < 2 {
		m := nextSSE(t, msgs)
		if m.event != "cloudevent" {
			t.Fatalf("message %+v, want a cloudevent", m)
		}
		var te TailEvent
		if err := json.Unmarshal([]byte(m.data), &te); err != nil {
			t.Fatalf("data %q: %v", m.data, err)
		}
		if want := strings.Split(m.id, "/"); len(want) != 2 {
			t.Errorf("id %q is not PARTITION/OFFSET", m.id)
		}
		got[te.Attributes["id"]] = te
	}
	text, bin := got["a-1"], got["a-3"]
	if text.Channel != "default/orders" || text.Attributes["type"] != "order.created" || text.Attributes["datacontenttype"] != "text/plain" ||
		text.Extensions["partitionkey"] != "c-1" || text.Data != "héllo, " || text.DataSize != 13 || !text.DataTruncated {
		t.Errorf("text event = %+v, want its first 8 bytes cut back to whole characters (héllo, ) of 13", text)
	}
	if bin.DataBase64 != "/wAB" || bin.Data != "" || bin.DataSize != 3 || bin.DataTruncated {
		t.Errorf("binary event = %+v, want base64 /wAB", bin)
	}
	if _, ok := got["a-2"]; ok {
		t.Error("type=order.created let order.shipped through")
	}
	// a-4 came after a-1 and a-3 on its partition or another; nothing more arrives once they are read.
	if _, ok := got["a-4"]; ok {
		t.Error("the CESQL filter let a-4 through")
	}
}

// A broker is tailed by its name: its events are those of the channel behind it.
func TestTailOfABroker(t *testing.T) {
	a, srv, _ := tailApp(t)
	ref := channel.BrokerRef("default", "shop")
	if err := a.inmem.Ensure(context.Background(), channel.Spec{Ref: ref, Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	a.router.set(ref, a.inmem)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/tail/default/shop", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /tail/default/shop = %d", resp.StatusCode)
	}
	msgs := readSSE(t, resp)
	nextSSE(t, msgs) // the tailing comment
	if err := a.router.Publish(ctx, ref, []*event.Event{{ID: "b-1", Source: "/s", SpecVersion: "1.0", Type: "t"}}); err != nil {
		t.Fatal(err)
	}
	var te TailEvent
	if m := nextSSE(t, msgs); json.Unmarshal([]byte(m.data), &te) != nil || te.Attributes["id"] != "b-1" || te.Channel != "default/shop" {
		t.Errorf("broker tail read %+v, want b-1 on default/shop", m)
	}
}

func TestTailAnswers(t *testing.T) {
	a, srv, _ := tailApp(t)
	for path, want := range map[string]int{
		"/tail/default/nope":                     http.StatusNotFound,
		"/tail/default/orders?from=never":        http.StatusBadRequest,
		"/tail/default/orders?maxData=-1":        http.StatusBadRequest,
		"/tail/default/orders?filter=type%20%3D": http.StatusBadRequest, // "type =": not CESQL
	} {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("GET %s = %d, want %d", path, resp.StatusCode, want)
		}
	}

	// With an admin secret, a token is needed.
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "admin"), 0o755)
	os.WriteFile(filepath.Join(dir, "admin", "token"), []byte("old\nnew-token\n"), 0o600)
	tokens, err := loadAdminTokens(dir, "admin")
	if err != nil {
		t.Fatal(err)
	}
	a.adminTokens = tokens
	for tok, want := range map[string]int{"": http.StatusUnauthorized, "wrong": http.StatusUnauthorized, "new-token": http.StatusOK} {
		ctx, cancel := context.WithCancel(context.Background())
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/tail/default/orders", nil)
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != want {
			t.Errorf("token %q: %d, want %d", tok, resp.StatusCode, want)
		}
		cancel()
		resp.Body.Close()
	}
	if resp, _ := http.Get(srv.URL + "/status"); resp.StatusCode != http.StatusOK {
		t.Errorf("/status with an admin secret = %d, want 200 (it stays open)", resp.StatusCode)
	}
	if _, err := loadAdminTokens(dir, "missing"); err == nil {
		t.Error("a missing admin secret loaded")
	}
}

func TestParseTailFrom(t *testing.T) {
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	for from, want := range map[string]channel.TailStart{
		"":                     {},
		"latest":               {},
		"earliest":             {Earliest: true},
		"10m":                  {Time: now.Add(-10 * time.Minute)},
		"2026-11-27T11:00:00Z": {Time: now.Add(-time.Hour)},
	} {
		r := httptest.NewRequest(http.MethodGet, "/tail/ns/ch?from="+from, nil)
		tr, err := parseTailRequest(r, now)
		if err != nil || tr.start != want {
			t.Errorf("from=%q: %+v, %v; want %+v", from, tr.start, err, want)
		}
	}
}
