package main

import (
	"bytes"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/eventgate/eventgate/internal/app"
)

func TestStatusTable(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	lag := int64(42)
	st := app.Status{
		Time:     now,
		NotReady: []string{"channel team-a/payments: BackendUnavailable: no Kafka broker answers at 127.0.0.1:9092"},
		Channels: []app.ChannelStatus{
			{Namespace: "default", Name: "orders", Kind: "InMemoryChannel", Backend: "inmemory", Partitions: 4,
				Address: "http://127.0.0.1:8080/default/orders", ReadyState: app.ReadyState{Ready: true, Reason: "Ready"}},
			{Namespace: "team-a", Name: "payments", Kind: "KafkaChannel", Backend: "kafka", Partitions: 12,
				Address:    "http://127.0.0.1:8080/team-a/payments",
				ReadyState: app.ReadyState{Reason: "BackendUnavailable", Message: "no Kafka broker answers at 127.0.0.1:9092"}},
		},
		Subscriptions: []app.SubscriptionStatus{
			{Namespace: "default", Name: "audit", Channel: "default/orders", Lag: &lag, ConcurrencyLimit: 16,
				ReadyState:       app.ReadyState{Ready: true, Reason: "Ready"},
				LastDeliveryTime: now.Add(-3 * time.Second),
				LastError:        "answered 500 Internal Server Error", LastErrorTime: now.Add(-200 * time.Second)},
			{Namespace: "default", Name: "idle", Channel: "default/orders",
				ReadyState: app.ReadyState{Reason: "ChannelNotReady"}},
		},
		Sources: []app.SourceStatus{
			{Kind: "GitHubSource", Namespace: "default", Name: "repo", Running: true,
				ReadyState: app.ReadyState{Ready: true, Reason: "Ready"}, LastEventTime: now.Add(-90 * time.Minute)},
		},
	}
	var b bytes.Buffer
	if err := writeStatusTable(&b, st); err != nil {
		t.Fatal(err)
	}
	got := b.String()
	t.Logf("\n%s", got)
	lines := strings.Split(got, "\n")
	find := func(prefix string) []string {
		t.Helper()
		for _, l := range lines {
			if strings.HasPrefix(l, prefix) {
				return columns(l)
			}
		}
		t.Fatalf("no line starting with %q in:\n%s", prefix, got)
		return nil
	}
	check := func(what string, got []string, want ...string) {
		t.Helper()
		if strings.Join(got, "|") != strings.Join(want, "|") {
			t.Errorf("%s:\n got %q\nwant %q", what, got, want)
		}
	}
	check("channel header", find("NAME   "), "NAME", "READY", "REASON", "BACKEND", "PARTITIONS", "ADDRESS")
	check("ready channel", find("default/orders"), "default/orders", "True", "Ready", "inmemory", "4", "http://127.0.0.1:8080/default/orders")
	check("kafka channel", find("team-a/payments"), "team-a/payments", "False", "BackendUnavailable", "kafka", "12", "http://127.0.0.1:8080/team-a/payments")
	check("subscription", find("default/audit"), "default/audit", "True", "Ready", "default/orders", "42", "16", "3s ago",
		"answered 500 Internal Server Error (3m20s ago)")
	check("idle subscription", find("default/idle"), "default/idle", "False", "ChannelNotReady", "default/orders", "-", "-", "-", "-")
	check("source", find("default/repo"), "default/repo", "True", "Ready", "GitHubSource", "true", "90m ago", "-")
	for _, section := range []string{"CHANNELS", "SUBSCRIPTIONS", "SOURCES", "NOT READY"} {
		if !strings.Contains(got, "\n"+section+"\n") && !strings.HasPrefix(got, section+"\n") {
			t.Errorf("no %s section", section)
		}
	}
	if !strings.Contains(got, "  channel team-a/payments: BackendUnavailable: no Kafka broker answers at 127.0.0.1:9092\n") {
		t.Errorf("the not-ready reason is not printed in full")
	}
	// The columns of a section line up: every row starts its READY column where the header does.
	header := strings.Index(lines[1], "READY")
	for _, l := range lines[2:4] {
		if l[header-1] != ' ' || l[header] == ' ' {
			t.Errorf("row %q does not line up with the header (READY at %d)", l, header)
		}
	}
}

// columns splits a table row on runs of two or more spaces (cells hold single spaces).
func columns(line string) []string {
	var out []string
	for _, c := range strings.Split(line, "   ") {
		if c = strings.TrimSpace(c); c != "" {
			out = append(out, c)
		}
	}
	return out
}

func TestStatusTableEmpty(t *testing.T) {
	var b bytes.Buffer
	if err := writeStatusTable(&b, app.Status{Time: time.Now(), Ready: true}); err != nil {
		t.Fatal(err)
	}
	if got := strings.Count(b.String(), "(none)"); got != 3 {
		t.Errorf("%d (none) rows, want one per empty section:\n%s", got, b.String())
	}
	if strings.Contains(b.String(), "NOT READY") {
		t.Errorf("a ready gateway has a NOT READY section:\n%s", b.String())
	}
}

func TestHumanAge(t *testing.T) {
	for d, want := range map[time.Duration]string{
		-time.Second:                 "0s",
		45 * time.Second:             "45s",
		119 * time.Second:            "119s",
		200 * time.Second:            "3m20s",
		5 * time.Minute:              "5m",
		25 * time.Minute:             "25m",
		130 * time.Minute:            "130m",
		3*time.Hour + 10*time.Minute: "3h10m",
		30 * time.Hour:               "30h",
		76 * time.Hour:               "3d4h",
		12 * 24 * time.Hour:          "12d",
	} {
		if got := humanAge(d); got != want {
			t.Errorf("humanAge(%v) = %q, want %q", d, got, want)
		}
	}
}

func TestStatusUnreachableNamesTheURL(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	cmd := newRoot()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetArgs([]string{"status", "--admin", "http://" + addr})
	err = cmd.Execute()
	if err == nil || exitCode(err) != 1 {
		t.Fatalf("err = %v (exit %d), want exit 1", err, exitCode(err))
	}
	if want := "http://" + addr + "/status"; !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "cannot reach") {
		t.Errorf("error %q does not say it cannot reach %s", err, want)
	}
}
