package event

import (
	"encoding/json"
	"fmt"
)

// A tiny scanner over JSON text that encoding/json has already accepted (json.Valid). It finds the
// members of an object and the elements of an array as raw byte ranges, without allocating, so the
// structured-mode decoder can keep data as its exact JSON text and map attributes directly onto Event
// fields. Every index is still bounds-checked: on text that is not valid JSON it reports an error
// rather than panicking.

var (
	errNotObject = fmt.Errorf("%w: structured event is not a JSON object", ErrInvalid)
	errNotArray  = fmt.Errorf("%w: batch is not a JSON array", ErrInvalid)
)

func skipSpace(b []byte, i int) int {
	for i < len(b) && isJSONSpace(b[i]) {
		i++
	}
	return i
}

// skipString returns the index just past the string literal starting at b[i] == '"', or -1.
func skipString(b []byte, i int) int {
	for j := i + 1; j < len(b); j++ {
		switch b[j] {
		case '\\':
			j++
		case '"':
			return j + 1
		}
	}
	return -1
}

// skipValue returns the index just past the JSON value starting at b[i], or -1.
func skipValue(b []byte, i int) int {
	if i >= len(b) {
		return -1
	}
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for j := i; j < len(b); j++ {
			switch b[j] {
			case '"':
				if j = skipString(b, j); j < 0 {
					return -1
				}
				j-- // the loop increments
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return j + 1
				}
			}
		}
		return -1
	default: // number, true, false, null
		j := i
		for j < len(b) && b[j] != ',' && b[j] != '}' && b[j] != ']' && !isJSONSpace(b[j]) {
			j++
		}
		if j == i {
			return -1
		}
		return j
	}
}

// forEachMember calls fn with the name (unescaped) and raw value of each member of the JSON object obj,
// in order. key is only valid during the call; raw aliases obj.
func forEachMember(obj []byte, fn func(key, raw []byte) error) error {
	i := skipSpace(obj, 0)
	if i >= len(obj) || obj[i] != '{' {
		return errNotObject
	}
	i = skipSpace(obj, i+1)
	for i < len(obj) && obj[i] != '}' {
		end := skipString(obj, i)
		if obj[i] != '"' || end < 0 {
			return errNotObject
		}
		key := obj[i+1 : end-1]
		for _, c := range key {
			if c == '\\' {
				s, ok := jsonString(obj[i:end])
				if !ok {
					return errNotObject
				}
				key = []byte(s)
				break
			}
		}
		i = skipSpace(obj, end)
		if i >= len(obj) || obj[i] != ':' {
			return errNotObject
		}
		i = skipSpace(obj, i+1)
		vend := skipValue(obj, i)
		if vend < 0 {
			return errNotObject
		}
		if err := fn(key, obj[i:vend]); err != nil {
			return err
		}
		i = skipSpace(obj, vend)
		if i < len(obj) && obj[i] == ',' {
			i = skipSpace(obj, i+1)
		}
	}
	if i >= len(obj) {
		return errNotObject
	}
	return nil
}

// forEachElement calls fn with the index and raw text of each element of the JSON array arr.
func forEachElement(arr []byte, fn func(i int, raw []byte) error) error {
	i := skipSpace(arr, 0)
	if i >= len(arr) || arr[i] != '[' {
		return errNotArray
	}
	i = skipSpace(arr, i+1)
	for n := 0; i < len(arr) && arr[i] != ']'; n++ {
		end := skipValue(arr, i)
		if end < 0 {
			return errNotArray
		}
		if err := fn(n, arr[i:end]); err != nil {
			return err
		}
		i = skipSpace(arr, end)
		if i < len(arr) && arr[i] == ',' {
			i = skipSpace(arr, i+1)
		}
	}
	if i >= len(arr) {
		return errNotArray
	}
	return nil
}

// jsonString decodes the JSON string literal raw. Literals without escapes are converted directly;
// others go through encoding/json. ok is false when raw is not a string literal.
func jsonString(raw []byte) (string, bool) {
	if len(raw) < 2 || raw[0] != '"' || raw[len(raw)-1] != '"' {
		return "", false
	}
	inner := raw[1 : len(raw)-1]
	for _, c := range inner {
		if c == '\\' || c == '"' || c < 0x20 {
			var s string
			if json.Unmarshal(raw, &s) != nil {
				return "", false
			}
			return s, true
		}
	}
	return string(inner), true
}
