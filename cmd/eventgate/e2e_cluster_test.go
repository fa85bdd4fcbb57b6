package main

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

// Faults on a three-node cluster (scripts/kafka up --nodes 3; EVENTGATE_TEST_KAFKA_CLUSTER names
// it): a channel replicated on all three nodes with min.insync.replicas=2 loses nothing acknowledged
// when a partition leader is killed, during a rolling restart, or when the one broker a gateway was
// told about dies. docs/reliability.md has the figures and how to reproduce them.

// clusterManifests: a KafkaChannel of 3 partitions replicated on all three nodes, and a subscription
// named like the channel, from the beginning of its topic, to subURL.
func clusterManifests(ch, subURL string) string {
	return fmt.Sprintf(`
apiVersion: messaging.knative.dev/v1beta1
kind: KafkaChannel
metadata: {name: %[1]s, namespace: e2e}
spec: {numPartitions: 3, replicationFactor: 3}
---
apiVersion: messaging.knative.dev/v1
kind: Subscription
metadata:
  name: %[1]s
  namespace: e2e
  annotations: {eventgate.dev/initial-offset: earliest}
spec:
  channel: {apiVersion: messaging.knative.dev/v1beta1, kind: KafkaChannel, name: %[1]s}
  subscriber: {uri: "%[2]s"}
`, ch, subURL)
}

// clusterGateway starts a gateway on the given brokers with the manifests in dir (and extra args), and
// waits until its channel's topic is fully replicated.
func clusterGateway(t *testing.T, c *cluster, brokers []string, dir, topic string, args ...string) *gateway {
	t.Helper()
	g := startGateway(t, append([]string{"--set", "kafka.brokers=" + strings.Join(brokers, ","), "--set", "channels.defaultProvisioner=kafka", "-f", dir}, args...)...)
	c.waitFullISR(topic, 3, 60*time.Second)
	return g
}

// verdict reads the topic back with an independent client and waits for every acknowledged event at
// the subscriber; it logs the figures and fails on any loss.
func verdict(t *testing.T, c *cluster, name string, load *timedLoad, sub *subscriber, topic, detail string) {
	t.Helper()
	acked := load.acked()
	onTopic := idsOnTopic(t, c.live(), topic)
	lost := missing(acked, onTopic)
	fig := load.figures()
	if len(lost) > 0 {
		t.Fatalf("%s: %s; %d events answered 202 are not on the topic (first: %v)", name, fig, len(lost), lost[:min(5, len(lost))])
	}
	seen := sub.waitAllDelivered(t, "/s", acked, 120*time.Second)
	t.Logf("%s: %s; %s; on the topic %d distinct, lost 0, duplicates %d; delivered %d distinct, lost 0, duplicates %d",
		name, fig, detail, len(onTopic), duplicates(onTopic), len(seen), duplicates(seen))
}

// Cluster fault 1: kill -9 of the node leading partition 0 while events are posted, then its restart;
// with the default produce timeout (10s, longer than the 9s the controller takes to fence a dead broker)
// and with a short one (2s, so ingress answers 503 instead of waiting).
func TestClusterLeaderKill9UnderLoad(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"produce timeout 10s (default)", nil},
		{"produce timeout 2s", []string{"--set", "kafka.produceTimeout=2s"}},
	} {
		t.Run(strings.ReplaceAll(tc.name, " ", "_"), func(t *testing.T) {
			c := kafkaCluster(t) // per subtest: its cleanup starts a node a failed subtest left down
			sub := newSubscriber(t)
			ch := uniqueName("cluster-kill")
			topic := "eventgate.e2e." + ch
			dir := t.TempDir()
			writeFile(t, dir, "m.yaml", clusterManifests(ch, sub.url+"/s"))
			g := clusterGateway(t, c, c.brokers, dir, topic, tc.args...)
			minISR := c.topicConfig(topic, "min.insync.replicas")

			load := startTimedLoad(4, "lk", g.ingress+"/e2e/"+ch)
			eventually(t, 60*time.Second, func() bool { return load.ackedCount() >= 200 }, "200 accepted before the kill")
			victim := c.leader(topic, 0)
			coordinator, controller := c.coordinator("eventgate.e2e."+ch), c.controller()
			c.node("kill", victim)
			atKill := load.ackedCount()
			moved := c.waitLeadersWithout(topic, victim, 60*time.Second)
			eventually(t, 60*time.Second, func() bool { return load.ackedCount() >= atKill+200 }, "200 accepted with node %d dead", victim)
			back := c.node("start", victim)
			c.waitFullISR(topic, 3, 60*time.Second)
			atStart := load.ackedCount()
			eventually(t, 60*time.Second, func() bool { return load.ackedCount() >= atStart+100 }, "100 accepted after node %d is back", victim)
			load.halt()

			verdict(t, c, "cluster, kill -9 of a partition leader, "+tc.name, load, sub, topic, fmt.Sprintf(
				"replication factor 3, min.insync.replicas %s; killed node %d (led partition 0; group coordinator node %d, controller node %d), its partitions led elsewhere %d ms after the kill, back in every ISR %.1f s after its start",
				minISR, victim, coordinator, controller, moved.Milliseconds(), back.Seconds()))
		})
	}
}

// Cluster fault 2: a rolling restart of all three nodes under load, each stopped gracefully and
// started again, the next one only once the last is back in every ISR.
func TestClusterRollingRestartUnderLoad(t *testing.T) {
	c := kafkaCluster(t)
	sub := newSubscriber(t)
	ch := uniqueName("cluster-roll")
	topic := "eventgate.e2e." + ch
	dir := t.TempDir()
	writeFile(t, dir, "m.yaml", clusterManifests(ch, sub.url+"/s"))
	g := clusterGateway(t, c, c.brokers, dir, topic)

	load := startTimedLoad(4, "rr", g.ingress+"/e2e/"+ch)
	eventually(t, 60*time.Second, func() bool { return load.ackedCount() >= 200 }, "200 accepted before the restarts")
	var steps []string
	for n := int32(1); n <= 3; n++ {
		stopped := c.node("stop", n)
		before := load.ackedCount()
		eventually(t, 60*time.Second, func() bool { return load.ackedCount() >= before+100 }, "100 accepted with node %d stopped", n)
		back := c.node("start", n)
		c.waitFullISR(topic, 3, 60*time.Second)
		steps = append(steps, fmt.Sprintf("node %d stopped in %.1f s, back in every ISR %.1f s after its start", n, stopped.Seconds(), back.Seconds()))
	}
	atEnd := load.ackedCount()
	eventually(t, 60*time.Second, func() bool { return load.ackedCount() >= atEnd+100 }, "100 accepted after the restarts")
	load.halt()

	verdict(t, c, "cluster, rolling restart", load, sub, topic, strings.Join(steps, "; "))
}

// Cluster fault 3: the gateway knows one broker's address only, and that broker dies. The Kafka
// client learnt the other brokers from the cluster's metadata, so ingress and delivery go on.
func TestClusterGatewayKnowsOneBrokerThatDies(t *testing.T) {
	c := kafkaCluster(t)
	seed := c.brokers[0]
	var seedNode int32 = -1
	for n, a := range c.addr {
		if a == seed {
			seedNode = n
		}
	}
	if seedNode < 0 {
		t.Fatalf("%s is not among the cluster's brokers %v", seed, c.addr)
	}
	sub := newSubscriber(t)
	ch := uniqueName("cluster-seed")
	topic := "eventgate.e2e." + ch
	dir := t.TempDir()
	writeFile(t, dir, "m.yaml", clusterManifests(ch, sub.url+"/s"))
	g := clusterGateway(t, c, []string{seed}, dir, topic)
	controller, coordinator := c.controller(), c.coordinator("eventgate.e2e."+ch)

	load := startTimedLoad(4, "sd", g.ingress+"/e2e/"+ch)
	eventually(t, 60*time.Second, func() bool { return load.ackedCount() >= 200 }, "200 accepted before the seed broker dies")
	c.node("kill", seedNode)
	killed := time.Now()
	c.waitLeadersWithout(topic, seedNode, 60*time.Second)
	atKill := load.ackedCount()
	eventually(t, 60*time.Second, func() bool { return load.ackedCount() >= atKill+300 }, "300 accepted with the only known broker dead")
	// Delivery goes on too: everything accepted so far arrives while the seed is still dead.
	sub.waitAllDelivered(t, "/s", load.acked(), 120*time.Second)
	eventually(t, 30*time.Second, func() bool { return status(g.admin+"/readyz") == http.StatusOK }, "/readyz 200 with the seed broker dead")
	load.halt()

	detail := fmt.Sprintf("the gateway knew only %s (node %d; group coordinator node %d, controller node %d), killed; %.1f s of load after the kill, every event accepted until then delivered before it came back, /readyz 200",
		seed, seedNode, coordinator, controller, time.Since(killed).Seconds())
	verdict(t, c, "cluster, the only known broker dies", load, sub, topic, detail)
	c.node("start", seedNode)
}
