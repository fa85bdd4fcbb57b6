package check

import (
	"errors"
	"testing"
	"time"
)

func TestProblemsNameTheirKeys(t *testing.T) {
	var inner Problems
	inner.Positive("partitions", 0)
	inner.Positive("ok", 1)
	inner.NotNegative("retry", -1)
	inner.NotNegative("ok", 0)
	inner.PositiveDuration("timeout", 0)
	inner.PositiveDuration("ok", time.Second)
	inner.NotNegativeDuration("backoffMax", -time.Second)
	inner.NotNegativeDuration("ok", 0)
	inner.OneOf("compression", "brotli", "none", "zstd")
	inner.OneOf("ok", "zstd", "none", "zstd")
	inner.HostPort("brokers[0]", "nohost")
	inner.HostPort("ok", ":8080")

	var outer Problems
	outer.Add("log.level", "%q is not one of debug, info", "loud")
	outer.Within("kafka", inner.Err())
	outer.Within("dispatch", nil)
	want := `log.level: "loud" is not one of debug, info
kafka.partitions: must be positive, got 0
kafka.retry: must not be negative, got -1
kafka.timeout: must be a positive duration, got 0s
kafka.backoffMax: must not be negative, got -1s
kafka.compression: "brotli" is not one of none, zstd
kafka.brokers[0]: "nohost" is not host:port (address nohost: missing port in address)`
	if got := outer.Err().Error(); got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}

func TestWithinKeepsTheChain(t *testing.T) {
	sentinel := errors.New("sentinel")
	var p Problems
	p.Within("kafka", sentinel)
	if err := p.Err(); !errors.Is(err, sentinel) || err.Error() != "kafka.sentinel" {
		t.Errorf("Within(single) = %v", err)
	}
	if (Problems{}).Err() != nil {
		t.Error("empty Problems is not nil")
	}
}
