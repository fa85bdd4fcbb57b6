package main

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// tlsBroker is the broker's TLS listener and the PEM file of its certificate: from
// EVENTGATE_TEST_KAFKA_TLS and EVENTGATE_TEST_KAFKA_CA, else as scripts/kafka sets them up (plaintext
// port + 3, certificate under EVENTGATE_KAFKA_DIR).
func tlsBroker(t *testing.T, plain string) (addr, caFile string) {
	t.Helper()
	addr, caFile = os.Getenv("EVENTGATE_TEST_KAFKA_TLS"), os.Getenv("EVENTGATE_TEST_KAFKA_CA")
	if addr == "" {
		host, port, err := net.SplitHostPort(plain)
		if err != nil {
			t.Fatal(err)
		}
		p, _ := strconv.Atoi(port)
		addr = net.JoinHostPort(host, strconv.Itoa(p+3))
	}
	if caFile == "" {
		dir := os.Getenv("EVENTGATE_KAFKA_DIR")
		if dir == "" {
			dir = "/tmp/eventgate-kafka"
		}
		caFile = filepath.Join(dir, "tls", "ca.pem")
	}
	if _, err := os.Stat(caFile); err != nil {
		t.Fatalf("the broker's certificate: %v (scripts/kafka up writes it)", err)
	}
	return addr, caFile
}

// TestKafkaTLS: the gateway reaches Kafka over TLS, trusting the broker's certificate from a PEM file;
// without that trust it never answers 202.
func TestKafkaTLS(t *testing.T) {
	broker := kafkaBroker(t)
	addr, caFile := tlsBroker(t, broker)
	ch := uniqueName("tls")
	dir := t.TempDir()
	writeFile(t, dir, "m.yaml", fmt.Sprintf("apiVersion: messaging.knative.dev/v1beta1\nkind: KafkaChannel\nmetadata: {name: %s, namespace: e2e}\n", ch))
	g := startGateway(t, "-f", dir, "--set", "kafka.brokers="+addr, "--set", "channels.defaultProvisioner=kafka",
		"--set", "kafka.tls.enabled=true", "--set", "kafka.tls.caFile="+caFile)
	if resp, body := post(t, g.ingress+"/e2e/"+ch, binaryEvent("tls-1"), "x"); resp.StatusCode != http.StatusAccepted {
		t.Fatalf("post: %d %s", resp.StatusCode, body)
	}
	recs := topicRecords(t, broker, "eventgate.e2e."+ch)
	if len(recs) != 1 || header(recs[0], "ce_id") != "tls-1" {
		t.Fatalf("records on the topic: %d", len(recs))
	}

	// Without the CA, the system roots do not trust the broker: no channel, no 202.
	g2 := startGatewayMayFail(t, "-f", dir, "--set", "kafka.brokers="+addr, "--set", "channels.defaultProvisioner=kafka",
		"--set", "kafka.tls.enabled=true", "--set", "kafka.produceTimeout=2s")
	if g2 != nil {
		if resp, _ := post(t, g2.ingress+"/e2e/"+ch, binaryEvent("tls-2"), "x"); resp.StatusCode == http.StatusAccepted {
			t.Errorf("202 from a gateway that does not trust the broker")
		}
	}
}
