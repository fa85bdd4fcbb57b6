package dispatch

import (
	"strings"
	"testing"
)

func TestDefaultConfigIsValid(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestConfigValidateNamesEveryKey(t *testing.T) {
	c := DefaultConfig()
	c.MaxInFlight, c.MinInFlight, c.Retry, c.BackoffPolicy = 0, 0, -1, "fibonacci"
	c.BackoffDelay, c.BackoffMax, c.Timeout, c.RetryAfterMax = -1, -1, 0, -1
	err := c.Validate()
	if err == nil {
		t.Fatal("no error")
	}
	for _, key := range []string{"maxInFlight", "minInFlight", "retry", "backoffPolicy", "backoffDelay",
		"backoffMax", "timeout", "retryAfterMax"} {
		if !strings.Contains(err.Error(), key+":") {
			t.Errorf("error %q does not name %s", err, key)
		}
	}
}
