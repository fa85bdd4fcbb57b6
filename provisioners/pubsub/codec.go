package pubsub

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"

	ps "cloud.google.com/go/pubsub/v2"

	"github.com/eventgate/eventgate/gateway/event"
)

// The message attributes of the CloudEvents Pub/Sub protocol binding: in binary mode every attribute
// is "ce-NAME" and datacontenttype is "content-type"; in structured mode "content-type" is the event
// format's media type and the body holds the whole event.
const (
	attrPrefix      = "ce-"
	attrContentType = "content-type"
	kafkaPrefix     = "ce_" // the Kafka binding's prefix: the codec reuses event.ToKafka/FromKafka
)

// Pub/Sub's limits on message attributes: past any of them a message would be refused, so the event
// is stored in structured mode instead.
const (
	maxAttributes     = 100
	maxAttrKeyBytes   = 256
	maxAttrValueBytes = 1024
)

// toMessage encodes e as a Pub/Sub message in the CloudEvents Pub/Sub binding. Binary mode is used
// whenever Pub/Sub accepts the attributes; an event with more than 100 attributes, or with one whose
// name or value is longer than Pub/Sub allows (a long extension, say), is stored in structured mode
// (application/cloudevents+json) so that it is never refused. The partitionkey extension, when set,
// is also the ordering key (see orderingKey).
func toMessage(e *event.Event) (*ps.Message, error) {
	_, headers, value := event.ToKafka(e)
	m := &ps.Message{Data: value, OrderingKey: orderingKey(e.Extension(event.PartitionKeyExtension))}
	binary := len(headers) <= maxAttributes
	if binary {
		m.Attributes = make(map[string]string, len(headers))
		for _, h := range headers {
			key := h.Key
			if strings.HasPrefix(key, kafkaPrefix) {
				key = attrPrefix + key[len(kafkaPrefix):]
			}
			if len(key) > maxAttrKeyBytes || len(h.Value) > maxAttrValueBytes {
				binary = false
				break
			}
			m.Attributes[key] = string(h.Value)
		}
	}
	if binary {
		return m, nil
	}
	body, err := event.MarshalStructured(e)
	if err != nil {
		return nil, err
	}
	m.Data = body
	m.Attributes = map[string]string{attrContentType: event.MediaTypeStructuredJSON}
	return m, nil
}

// maxOrderingKeyBytes is Pub/Sub's limit on an ordering key.
const maxOrderingKeyBytes = 1024

// orderingKey is the ordering key for partitionkey pk: pk itself, or, when it is longer than Pub/Sub
// allows, its SHA-256 in hex (the same key always gets the same ordering key, so order per key holds).
func orderingKey(pk string) string {
	if len(pk) <= maxOrderingKeyBytes {
		return pk
	}
	sum := sha256.Sum256([]byte(pk))
	return hex.EncodeToString(sum[:])
}

// fromMessage decodes a Pub/Sub message in the CloudEvents Pub/Sub binding (binary mode, or
// structured mode in JSON) and validates it. Attributes that are neither "ce-" attributes nor
// content-type are ignored (Pub/Sub and other publishers may add their own). Errors wrap
// event.ErrInvalid or event.ErrUnsupportedMediaType.
func fromMessage(data []byte, attrs map[string]string) (*event.Event, error) {
	headers := make([]event.Header, 0, len(attrs))
	for k, v := range attrs {
		switch {
		case strings.EqualFold(k, attrContentType):
			headers = append(headers, event.Header{Key: attrContentType, Value: []byte(v)})
		case len(k) > len(attrPrefix) && strings.EqualFold(k[:len(attrPrefix)], attrPrefix):
			headers = append(headers, event.Header{Key: kafkaPrefix + strings.ToLower(k[len(attrPrefix):]), Value: []byte(v)})
		}
	}
	e, err := event.FromKafka(nil, headers, data)
	if err != nil {
		return nil, fmt.Errorf("pubsub message: %w", err)
	}
	return e, nil
}
