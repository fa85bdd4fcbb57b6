package filter_test

import (
	"fmt"

	"github.com/eventgate/eventgate/gateway/event"
	"github.com/eventgate/eventgate/gateway/filter"
)

// A trigger's filters: the list is ANDed, and a non-empty list overrides filter.attributes.
func ExampleCompile() {
	f, err := filter.Compile(
		map[string]string{"type": "ignored: filters is set"},
		[]filter.Spec{
			{Prefix: map[string]string{"type": "com.example.order."}},
			{CESQL: "region = 'eu' OR region = 'uk'"},
		})
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, e := range []*event.Event{
		{ID: "1", Type: "com.example.order.created", Extensions: map[string]string{"region": "eu"}},
		{ID: "2", Type: "com.example.order.created", Extensions: map[string]string{"region": "us"}},
		{ID: "3", Type: "com.example.order.created"}, // no region: the CESQL evaluation fails
		{ID: "4", Type: "com.example.invoice.sent", Extensions: map[string]string{"region": "uk"}},
	} {
		fmt.Println(e.ID, f.Pass(e))
	}
	// Output:
	// 1 true
	// 2 false
	// 3 false
	// 4 false
}
