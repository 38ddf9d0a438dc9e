package main

// seqTracker follows the sequence numbers one connection receives. It is
// owned by the connection's reader goroutine (not safe for concurrent use).
//
// The seqs may come from several independent publishers: with L lanes, seq s
// belongs to lane s % L, and order is only promised within a lane (messages
// of different publishers may interleave). The zero value has one lane.
//
//   - new: first time this seq is seen and it is not below the highest seen
//     in its lane;
//   - ooo (out of order): first time seen, but a higher seq of the same lane
//     arrived before it;
//   - dup: seen before.
//
// Lost messages are not known here: they are expected-minus-unique, computed
// by whoever knows how many messages were sent.
type seqTracker struct {
	seen  []uint64 // bitset of seqs seen
	next  uint64   // one lane: highest seq seen + 1 (0: none yet)
	nexts []uint64 // several lanes: the same per lane (allocated on first use)
	lanes uint64   // 0 or 1: one lane
}

type seqVerdict uint8

const (
	seqNew seqVerdict = iota
	seqOOO
	seqDup
	seqBad // beyond maxTrackedSeq: not tracked
)

// maxTrackedSeq bounds the bitset (512 KiB per connection at most).
const maxTrackedSeq = 1 << 22

// maxLanes bounds the lanes (concurrent publishers) a tracker follows.
const maxLanes = 1024

// newSeqTracker returns a tracker for seqs spread over lanes lanes (values
// below 2 mean one lane; above maxLanes, maxLanes).
func newSeqTracker(lanes int) seqTracker {
	return seqTracker{lanes: uint64(min(max(lanes, 1), maxLanes))}
}

func (t *seqTracker) observe(s uint64) seqVerdict {
	if s >= maxTrackedSeq {
		return seqBad
	}
	w, bit := s/64, uint64(1)<<(s%64)
	if int(w) >= len(t.seen) {
		n := max(int(w)+1, 2*len(t.seen), 1)
		grown := make([]uint64, n)
		copy(grown, t.seen)
		t.seen = grown
	}
	if t.seen[w]&bit != 0 {
		return seqDup
	}
	t.seen[w] |= bit
	next := &t.next
	if t.lanes > 1 {
		if t.nexts == nil {
			t.nexts = make([]uint64, t.lanes)
		}
		next = &t.nexts[s%t.lanes]
	}
	if s >= *next {
		*next = s + 1
		return seqNew
	}
	return seqOOO
}
