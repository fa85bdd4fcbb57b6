package channel

import "sort"

// OffsetTracker finds a partition's commit point: the offset after the longest prefix of handed-out
// records that are all done. Records are handed out in increasing offset order (gaps allowed) and
// may be marked done in any order. It is a plain value, not safe for concurrent use: callers lock.
type OffsetTracker struct {
	pending []pendingOffset // handed out and not yet committed, in offset order; head at index 0
	commit  int64           // next offset to consume once everything before it is done; -1 until known
}

type pendingOffset struct {
	offset int64
	done   bool
}

// NewOffsetTracker returns a tracker whose commit point starts at start (the first offset the
// partition will hand out, or the group's committed offset).
func NewOffsetTracker(start int64) *OffsetTracker { return &OffsetTracker{commit: start} }

// Track records that offset was handed out. Offsets must increase; an offset not above the last one
// tracked is ignored.
func (t *OffsetTracker) Track(offset int64) {
	if n := len(t.pending); n > 0 && offset <= t.pending[n-1].offset {
		return
	}
	if len(t.pending) == 0 && offset < t.commit {
		return
	}
	t.pending = append(t.pending, pendingOffset{offset: offset})
}

// Done marks offset done and returns the commit point and whether it moved. Unknown offsets and
// repeated calls change nothing.
func (t *OffsetTracker) Done(offset int64) (commit int64, advanced bool) {
	i := sort.Search(len(t.pending), func(i int) bool { return t.pending[i].offset >= offset })
	if i == len(t.pending) || t.pending[i].offset != offset || t.pending[i].done {
		return t.commit, false
	}
	t.pending[i].done = true
	n := 0
	for n < len(t.pending) && t.pending[n].done {
		n++
	}
	if n == 0 {
		return t.commit, false
	}
	t.commit = t.pending[n-1].offset + 1
	// Drop the committed prefix; copy down when it is large so the backing array does not grow forever.
	t.pending = t.pending[n:]
	if cap(t.pending) > 1024 && len(t.pending) < cap(t.pending)/4 {
		t.pending = append([]pendingOffset(nil), t.pending...)
	}
	return t.commit, true
}

// Commit returns the current commit point.
func (t *OffsetTracker) Commit() int64 { return t.commit }

// Pending returns how many handed-out records are not yet committed.
func (t *OffsetTracker) Pending() int { return len(t.pending) }
