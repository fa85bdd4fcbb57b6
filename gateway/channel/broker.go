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
