package dispatch_test

import (
	"fmt"
	"time"

	"github.com/eventgate/eventgate/gateway/dispatch"
)

// The delay before each retry: exponential backoff from 100ms capped at 1s, and a server's
// Retry-After of 3s honoured only up to RetryAfterMax (2s).
func ExampleNextDelay() {
	p := dispatch.Policy{
		Retry: 4, Backoff: dispatch.BackoffExponential,
		BackoffDelay: 100 * time.Millisecond, BackoffMax: time.Second, RetryAfterMax: 2 * time.Second,
	}
	for n := 1; n <= p.Retry; n++ {
		fmt.Println(n, dispatch.NextDelay(p, n, 0, false), dispatch.NextDelay(p, n, 3*time.Second, true))
	}
	// Output:
	// 1 200ms 2s
	// 2 400ms 2s
	// 3 800ms 2s
	// 4 1s 2s
}
