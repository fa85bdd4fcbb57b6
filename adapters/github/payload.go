package github

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/url"
	"strconv"
)

// Errors for request bodies that are not a GitHub webhook payload. Both mean HTTP 4xx: errUnsupported
// 415, errBadPayload 400.
var (
	errUnsupported = errors.New("unsupported content type")
	errBadPayload  = errors.New("bad payload")
)

// Content types GitHub webhooks are configured with.
const (
	contentJSON = "application/json"
	contentForm = "application/x-www-form-urlencoded"
)

// payloadJSON returns the JSON payload of a webhook body: the body itself for application/json, the
// payload= field for application/x-www-form-urlencoded. The payload must be a JSON object. Errors wrap
// errUnsupported or errBadPayload; it never panics, whatever the input.
func payloadJSON(contentType string, body []byte) ([]byte, error) {
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return nil, fmt.Errorf("%w: %q does not parse", errUnsupported, contentType)
	}
	var payload []byte
	switch mt {
	case contentJSON:
		payload = body
	case contentForm:
		form, err := url.ParseQuery(string(body))
		if err != nil {
			return nil, fmt.Errorf("%w: form body does not parse", errBadPayload)
		}
		if !form.Has("payload") {
			return nil, fmt.Errorf("%w: form body has no payload field", errBadPayload)
		}
		payload = []byte(form.Get("payload"))
	default:
		return nil, fmt.Errorf("%w: want %s or %s", errUnsupported, contentJSON, contentForm)
	}
	trimmed := bytes.TrimLeft(payload, " \t\r\n")
	if len(trimmed) == 0 || trimmed[0] != '{' || !json.Valid(payload) {
		return nil, fmt.Errorf("%w: payload is not a JSON object", errBadPayload)
	}
	return payload, nil
}

// subjectFields are the payload members a subject is taken from. Each is decoded on its own, so a
// member of an unexpected type only loses the subject, never the event.
type subjectFields struct {
	Ref         json.RawMessage `json:"ref"`
	Number      json.RawMessage `json:"number"`
	PullRequest json.RawMessage `json:"pull_request"`
	Issue       json.RawMessage `json:"issue"`
	Release     json.RawMessage `json:"release"`
}

// subject returns the CloudEvents subject for a GitHub event of type eventType with the given JSON
// object payload: the pull request number for pull_request, the issue number for issues and
// issue_comment, the ref for push, create and delete, the release's tag name for release; "" for any
// other event or when the payload lacks the member.
func subject(eventType string, payload []byte) string {
	var f subjectFields
	if json.Unmarshal(payload, &f) != nil {
		return ""
	}
	switch eventType {
	case "pull_request":
		if n := member(f.PullRequest, "number"); n != nil {
			return number(n)
		}
		return number(f.Number)
	case "issues", "issue_comment":
		return number(member(f.Issue, "number"))
	case "push", "create", "delete":
		return str(f.Ref)
	case "release":
		return str(member(f.Release, "tag_name"))
	}
	return ""
}

// member returns the raw value of name in the JSON object obj, or nil.
func member(obj json.RawMessage, name string) json.RawMessage {
	var m map[string]json.RawMessage
	if len(obj) == 0 || json.Unmarshal(obj, &m) != nil {
		return nil
	}
	return m[name]
}

// number returns the decimal form of a non-negative JSON integer, or "".
func number(raw json.RawMessage) string {
	var n uint64
	if len(raw) == 0 || json.Unmarshal(raw, &n) != nil {
		return ""
	}
	return strconv.FormatUint(n, 10)
}

// str returns the value of a JSON string, or "".
func str(raw json.RawMessage) string {
	var s string
	if len(raw) == 0 || json.Unmarshal(raw, &s) != nil {
		return ""
	}
	return s
}
