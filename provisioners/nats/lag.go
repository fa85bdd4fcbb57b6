package nats

import (
	"context"

	"github.com/eventgate/eventgate/gateway/channel"
)

// Lag returns, for every group subscribed in this process and each partition of its channel, the
// events its consumer has not had acknowledged: those not yet delivered (NumPending) and those
// delivered and not acknowledged (NumAckPending). It makes one consumer info request per partition
// and returns what it has when ctx is done or the server cannot be reached. Safe for concurrent use.
func (b *Backend) Lag(ctx context.Context) []channel.LagSample {
	type item struct {
		g      channel.Group
		stream string
		base   string
		parts  int32
	}
	b.mu.Lock()
	var items []item
	for k, g := range b.groups {
		if len(g.members) == 0 {
			continue
		}
		items = append(items, item{channel.Group{Channel: k.ch, Name: k.name}, g.cs.stream, g.base, g.cs.partitions})
	}
	b.mu.Unlock()
	if len(items) == 0 {
		return nil
	}
	_, js, err := b.connected()
	if err != nil {
		return nil
	}
	var out []channel.LagSample
	for _, it := range items {
		for p := int32(0); p < it.parts; p++ {
			if ctx.Err() != nil {
				return out
			}
			rctx, cancel := context.WithTimeout(ctx, b.cfg.RequestTimeout)
			cons, err := js.Consumer(rctx, it.stream, consumerName(it.base, p))
			cancel()
			if err != nil {
				continue
			}
			info := cons.CachedInfo()
			out = append(out, channel.LagSample{Group: it.g, Partition: p, Lag: int64(info.NumPending) + int64(info.NumAckPending)})
		}
	}
	return out
}
