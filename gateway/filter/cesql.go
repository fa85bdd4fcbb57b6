package filter

import (
	"errors"
	"fmt"
	"strings"
	"time"

	cesql "github.com/cloudevents/sdk-go/sql/v2"
	cesqlparser "github.com/cloudevents/sdk-go/sql/v2/parser"
	ce "github.com/cloudevents/sdk-go/v2/event"

	"github.com/eventgate/eventgate/gateway/event"
)

// ParseCESQL parses a CESQL 1.0 expression and returns the parser's message when it does not parse;
// nil when it does. It is the check manifests get when they load.
func ParseCESQL(expr string) error {
	_, err := compileCESQL(expr)
	return err
}

// cesqlNode is a parsed CESQL expression.
type cesqlNode struct {
	expr cesql.Expression
}

func compileCESQL(text string) (cesqlNode, error) {
	if strings.TrimSpace(text) == "" {
		return cesqlNode{}, errors.New("empty expression")
	}
	expr, err := parseSafely(text)
	if err != nil {
		return cesqlNode{}, err
	}
	if expr == nil {
		return cesqlNode{}, errors.New("the expression does not parse")
	}
	return cesqlNode{expr: expr}, nil
}

// parseSafely guards against a panic in the generated parser: a bad expression is an error, never
// a crash.
func parseSafely(text string) (expr cesql.Expression, err error) {
	defer func() {
		if r := recover(); r != nil {
			expr, err = nil, fmt.Errorf("the expression does not parse: %v", r)
		}
	}()
	return cesqlparser.Parse(text)
}

func (n cesqlNode) pass(e *event.Event) bool {
	v, err := n.evaluate(e)
	b, ok := v.(bool)
	return err == nil && ok && b
}

// evaluate evaluates the expression against e: the raw result and error of the CESQL runtime. A
// panic in the runtime is an error.
func (n cesqlNode) evaluate(e *event.Event) (v any, err error) {
	defer func() {
		if r := recover(); r != nil {
			v, err = nil, fmt.Errorf("cesql evaluation failed: %v", r)
		}
	}()
	return n.expr.Evaluate(sdkEvent(e))
}

// sdkEvent converts e's context attributes and extensions into the SDK's event, which the CESQL
// runtime reads (CESQL 1.0 does not read data, so it is left out). An attribute the SDK refuses (a
// time that is not RFC 3339, an extension name it does not accept) is left out: an expression that
// reads it sees it missing.
func sdkEvent(e *event.Event) ce.Event {
	out := ce.New(ce.CloudEventsVersionV1)
	out.SetID(e.ID)
	out.SetSource(e.Source)
	out.SetType(e.Type)
	if e.Subject != "" {
		out.SetSubject(e.Subject)
	}
	if e.DataSchema != "" {
		out.SetDataSchema(e.DataSchema)
	}
	if e.DataContentType != "" {
		out.SetDataContentType(e.DataContentType)
	}
	if e.Time != "" {
		if t, err := time.Parse(time.RFC3339Nano, e.Time); err == nil {
			out.SetTime(t)
		}
	}
	for k, v := range e.Extensions {
		_ = out.Context.SetExtension(k, v)
	}
	return out
}
