package kubernetes

// sentSet remembers the last capacity keys added, forgetting the oldest first. It is not safe for
// concurrent use; the adapter guards it with its mutex.
type sentSet struct {
	keys map[string]struct{}
	ring []string // insertion order; ring[next] is the oldest once full
	next int
}

// newSentSet returns a set holding at most capacity keys (at least 1).
func newSentSet(capacity int) *sentSet {
	if capacity < 1 {
		capacity = 1
	}
	return &sentSet{keys: make(map[string]struct{}, capacity), ring: make([]string, 0, capacity)}
}

// has reports whether k is remembered.
func (s *sentSet) has(k string) bool {
	_, ok := s.keys[k]
	return ok
}

// add remembers k, forgetting the oldest key when full. Adding a remembered key does nothing.
func (s *sentSet) add(k string) {
	if s.has(k) {
		return
	}
	if len(s.ring) < cap(s.ring) {
		s.ring = append(s.ring, k)
	} else {
		delete(s.keys, s.ring[s.next])
		s.ring[s.next] = k
		s.next = (s.next + 1) % len(s.ring)
	}
	s.keys[k] = struct{}{}
}

// len returns how many keys are remembered.
func (s *sentSet) len() int { return len(s.keys) }
