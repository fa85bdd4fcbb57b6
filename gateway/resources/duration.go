package resources

import (
	"errors"
	"fmt"
	"math"
	"math/big"
	"strconv"
	"time"
)

// ErrDuration is wrapped by every error ParseDuration returns.
var ErrDuration = errors.New("invalid ISO 8601 duration")

// ParseDuration parses an ISO 8601 duration of the form PnWnDTnHnMnS, as Knative uses for delivery
// timings and KafkaChannel retention: "PT0.5S", "PT10S", "PT1M", "P1D", "P1DT12H", "P2W".
//
// Rules:
//   - the designators are upper case and appear in the order W, D, then after "T": H, M, S; each at most once;
//   - at least one component is given, and a "T" is followed by at least one time component;
//   - a decimal fraction ("." or ",") is allowed on the last component only; digits below a nanosecond
//     are truncated;
//   - years and months are rejected: they have no fixed length;
//   - negative durations and durations longer than time.Duration can hold are rejected.
//
// Errors wrap ErrDuration. ParseDuration never panics.
func ParseDuration(s string) (time.Duration, error) {
	d, err := parseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%w %q: %s", ErrDuration, s, err)
	}
	return d, nil
}

// durationUnits lists the designators in the order they must appear; date units come before "T".
var durationUnits = []struct {
	designator byte
	timePart   bool
	unit       time.Duration
}{
	{'W', false, 7 * 24 * time.Hour},
	{'D', false, 24 * time.Hour},
	{'H', true, time.Hour},
	{'M', true, time.Minute},
	{'S', true, time.Second},
}

func parseDuration(s string) (time.Duration, error) {
	if s == "" {
		return 0, errors.New("empty")
	}
	if s[0] == '-' {
		return 0, errors.New("negative durations are not allowed")
	}
	if s[0] != 'P' {
		return 0, errors.New(`must start with "P"`)
	}
	rest := s[1:]
	var (
		total      time.Duration
		inTime     bool
		timeSeen   bool // a component followed "T"
		components int
		next       int  // index into durationUnits of the next allowed designator
		fractional bool // a component had a fraction: it must have been the last
	)
	for len(rest) > 0 {
		if rest[0] == 'T' {
			if inTime {
				return 0, errors.New(`"T" appears twice`)
			}
			inTime = true
			rest = rest[1:]
			for next < len(durationUnits) && !durationUnits[next].timePart {
				next++
			}
			continue
		}
		if fractional {
			return 0, errors.New("only the last component may have a fraction")
		}
		// Number: digits, optionally a fraction.
		i := 0
		for i < len(rest) && rest[i] >= '0' && rest[i] <= '9' {
			i++
		}
		intPart := rest[:i]
		fracPart := ""
		if i < len(rest) && (rest[i] == '.' || rest[i] == ',') {
			j := i + 1
			for j < len(rest) && rest[j] >= '0' && rest[j] <= '9' {
				j++
			}
			fracPart = rest[i+1 : j]
			if fracPart == "" {
				return 0, errors.New("a decimal separator must be followed by digits")
			}
			fractional = true
			i = j
		}
		if intPart == "" && fracPart == "" {
			return 0, fmt.Errorf("expected a number at %q", rest)
		}
		if i >= len(rest) {
			return 0, errors.New("a number must be followed by a designator")
		}
		des := rest[i]
		rest = rest[i+1:]
		if des == 'Y' || (des == 'M' && !inTime) {
			return 0, errors.New("years and months are not supported (no fixed length): use weeks or days")
		}
		u := -1
		for k := next; k < len(durationUnits); k++ {
			if durationUnits[k].designator == des && durationUnits[k].timePart == inTime {
				u = k
				break
			}
		}
		if u < 0 {
			return 0, fmt.Errorf("unexpected designator %q", string(des))
		}
		next = u + 1
		components++
		if inTime {
			timeSeen = true
		}
		v, err := componentValue(intPart, fracPart, durationUnits[u].unit)
		if err != nil {
			return 0, err
		}
		if total > math.MaxInt64-v {
			return 0, errors.New("too long")
		}
		total += v
	}
	if inTime && !timeSeen {
		return 0, errors.New(`"T" must be followed by hours, minutes or seconds`)
	}
	if components == 0 {
		return 0, errors.New("no components")
	}
	return total, nil
}

// componentValue returns (intPart.fracPart) × unit, truncated to whole nanoseconds.
func componentValue(intPart, fracPart string, unit time.Duration) (time.Duration, error) {
	var whole int64
	if intPart != "" {
		n, err := strconv.ParseInt(intPart, 10, 64)
		if err != nil || n > math.MaxInt64/int64(unit) {
			return 0, errors.New("too long")
		}
		whole = n * int64(unit)
	}
	if fracPart == "" {
		return time.Duration(whole), nil
	}
	if len(fracPart) > 18 {
		fracPart = fracPart[:18] // far below a nanosecond for any unit here
	}
	num, _ := new(big.Int).SetString(fracPart, 10) // only digits: cannot fail
	den := new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(len(fracPart))), nil)
	num.Mul(num, big.NewInt(int64(unit)))
	num.Quo(num, den) // < unit, so fits in int64
	f := num.Int64()
	if whole > math.MaxInt64-f {
		return 0, errors.New("too long")
	}
	return time.Duration(whole + f), nil
}
