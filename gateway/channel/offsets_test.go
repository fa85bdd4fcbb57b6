package channel

import "testing"

func TestOffsetTrackerCommitsContiguousPrefix(t *testing.T) {
	tests := []struct {
		name    string
		start   int64
		tracked []int64
		done    []int64
		commit  int64
		pending int
	}{
		{"nothing done", 0, []int64{0, 1, 2}, nil, 0, 3},
		{"in order", 0, []int64{0, 1, 2}, []int64{0, 1}, 2, 1},
		{"gap blocks commit", 0, []int64{0, 1, 2}, []int64{1, 2}, 0, 3},
		{"gap filled", 0, []int64{0, 1, 2}, []int64{2, 1, 0}, 3, 0},
		{"offset gaps from compaction", 10, []int64{10, 13, 17}, []int64{10, 13}, 14, 1},
		{"unknown and repeated marks ignored", 5, []int64{5, 6}, []int64{99, 5, 5, 4}, 6, 1},
		{"tracked below start ignored", 5, []int64{3, 4, 5}, []int64{3, 5}, 6, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := NewOffsetTracker(tt.start)
			for _, o := range tt.tracked {
				tr.Track(o)
			}
			for _, o := range tt.done {
				tr.Done(o)
			}
			if got := tr.Commit(); got != tt.commit {
				t.Errorf("commit = %d, want %d", got, tt.commit)
			}
			if got := tr.Pending(); got != tt.pending {
				t.Errorf("pending = %d, want %d", got, tt.pending)
			}
		})
	}
}

func TestOffsetTrackerReportsAdvance(t *testing.T) {
	tr := NewOffsetTracker(0)
	for o := int64(0); o < 3; o++ {
		tr.Track(o)
	}
	if c, moved := tr.Done(1); moved || c != 0 {
		t.Fatalf("Done(1) = %d,%v; want 0,false", c, moved)
	}
	if c, moved := tr.Done(0); !moved || c != 2 {
		t.Fatalf("Done(0) = %d,%v; want 2,true", c, moved)
	}
}

func TestOffsetTrackerManyOutOfOrder(t *testing.T) {
	tr := NewOffsetTracker(0)
	const n = 5000
	for o := int64(0); o < n; o++ {
		tr.Track(o)
	}
	// Mark odd offsets first, then even ones: the commit point may move only after each even one.
	for o := int64(1); o < n; o += 2 {
		tr.Done(o)
	}
	if tr.Commit() != 0 {
		t.Fatalf("commit moved past an undone offset: %d", tr.Commit())
	}
	for o := int64(0); o < n; o += 2 {
		c, _ := tr.Done(o)
		if c != o+2 {
			t.Fatalf("after Done(%d) commit = %d, want %d", o, c, o+2)
		}
	}
	if tr.Pending() != 0 {
		t.Fatalf("pending = %d, want 0", tr.Pending())
	}
}
