package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// saslBroker is the broker's SASL_PLAINTEXT listener: EVENTGATE_TEST_KAFKA_SASL, else the plaintext
// port + 2 (as scripts/kafka sets it up).
func saslBroker(t *testing.T, plain string) string {
	t.Helper()
	if s := os.Getenv("EVENTGATE_TEST_KAFKA_SASL"); s != "" {
		return s
	}
	host, port, err := net.SplitHostPort(plain)
	if err != nil {
		t.Fatal(err)
	}
	p, _ := strconv.Atoi(port)
	return net.JoinHostPort(host, strconv.Itoa(p+2))
}

// TestKafkaSASL: the gateway authenticates to Kafka with SASL PLAIN and SCRAM; a wrong password
// keeps it unready and answers 503, never 202.
func TestKafkaSASL(t *testing.T) {
	broker := kafkaBroker(t)
	sasl := saslBroker(t, broker)

	// A SCRAM user, created through the admin API on the plaintext listener.
	cl, err := kgo.NewClient(kgo.SeedBrokers(broker))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, m := range []kadm.ScramMechanism{kadm.ScramSha256, kadm.ScramSha512} {
		// One mechanism per request: the broker refuses two changes to one user in the same request.
		res, err := kadm.NewClient(cl).AlterUserSCRAMs(ctx, nil, []kadm.UpsertSCRAM{
			{User: "scrammer", Mechanism: m, Iterations: 8192, Password: "scram-secret"},
		})
		if err == nil {
			err = res.Error()
		}
		if err != nil {
			t.Fatalf("creating the SCRAM user (%v): %v", m, err)
		}
	}

	for _, tc := range []struct{ mechanism, user, password string }{
		{"PLAIN", "eventgate", "eventgate-secret"},
		{"SCRAM-SHA-256", "scrammer", "scram-secret"},
		{"SCRAM-SHA-512", "scrammer", "scram-secret"},
	} {
		t.Run(tc.mechanism, func(t *testing.T) {
			ch := uniqueName("sasl")
			dir := t.TempDir()
			writeFile(t, dir, "m.yaml", fmt.Sprintf("apiVersion: messaging.knative.dev/v1beta1\nkind: KafkaChannel\nmetadata: {name: %s, namespace: e2e}\n", ch))
			g := startGateway(t, "-f", dir, "--set", "kafka.brokers="+sasl, "--set", "channels.defaultProvisioner=kafka",
				"--set", "kafka.sasl.mechanism="+tc.mechanism, "--set", "kafka.sasl.username="+tc.user,
				"--set", "kafka.sasl.password="+tc.password)
			if resp, body := post(t, g.ingress+"/e2e/"+ch, binaryEvent("sasl-1"), "x"); resp.StatusCode != http.StatusAccepted {
				t.Fatalf("post: %d %s", resp.StatusCode, body)
			}
			recs := topicRecords(t, broker, "eventgate.e2e."+ch)
			if len(recs) != 1 || header(recs[0], "ce_id") != "sasl-1" {
				t.Fatalf("records on the topic: %d", len(recs))
			}
			if status(g.admin+"/readyz") != http.StatusOK {
				t.Errorf("not ready with good credentials")
			}
		})
	}

	t.Run("wrong password", func(t *testing.T) {
		dir := t.TempDir()
		// The channel cannot even be created: the gateway refuses to start, naming the problem.
		writeFile(t, dir, "m.yaml", "apiVersion: messaging.knative.dev/v1beta1\nkind: KafkaChannel\nmetadata: {name: never, namespace: e2e}\n")
		g := startGatewayMayFail(t, "-f", dir, "--set", "kafka.brokers="+sasl, "--set", "channels.defaultProvisioner=kafka",
			"--set", "kafka.sasl.mechanism=PLAIN", "--set", "kafka.sasl.username=eventgate", "--set", "kafka.sasl.password=wrong",
			"--set", "kafka.produceTimeout=2s")
		if g == nil {
			return // refused at start: fine
		}
		if status(g.admin+"/readyz") == http.StatusOK {
			t.Errorf("ready with a wrong password")
		}
		if resp, _ := post(t, g.ingress+"/e2e/never", binaryEvent("nope"), "x"); resp.StatusCode == http.StatusAccepted {
			t.Errorf("202 with a wrong password")
		}
	})
}
