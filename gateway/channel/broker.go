package channel

import "strings"

// brokerPrefix starts the name of the channel that backs a broker. Resource names are DNS labels,
// which hold no dot, so a broker's channel never shares a name with a declared channel; on Kafka the
// default topic template makes it eventgate.NAMESPACE.broker.NAME.
const brokerPrefix = "broker."

// BrokerRef returns the channel that backs broker name in namespace: a broker is a channel
// underneath, and its triggers are consumer groups on it.
func BrokerRef(namespace, name string) Ref {
	return Ref{Namespace: namespace, Name: brokerPrefix + name}
}

// Broker returns the name of the broker r backs, and whether r backs one (see BrokerRef).
func (r Ref) Broker() (string, bool) {
	name, ok := strings.CutPrefix(r.Name, brokerPrefix)
	return name, ok && name != ""
}

// Knative's broker ingress hosts: a request with either Host and the path /NAMESPACE/NAME addresses
// broker NAME of NAMESPACE.
const (
	BrokerIngressHost      = "broker-ingress.knative-eventing.svc.cluster.local"
	KafkaBrokerIngressHost = "kafka-broker-ingress.knative-eventing.svc.cluster.local"
)

// Public returns the name people address r by: for a broker's channel, Ref{NAMESPACE, BROKER} (the
// ingress path and token directory name it so); any other r as it is.
func (r Ref) Public() Ref {
	if name, ok := r.Broker(); ok {
		return Ref{Namespace: r.Namespace, Name: name}
	}
	return r
}

// Describe names r for people: "broker NAMESPACE/NAME" for a broker's channel, else
// "channel NAMESPACE/NAME".
func (r Ref) Describe() string {
	if _, ok := r.Broker(); ok {
		return "broker " + r.Public().String()
	}
	return "channel " + r.String()
}
