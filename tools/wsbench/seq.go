package main

// seqTracker follows the sequence numbers one connection receives. It is
// owned by the connection's reader goroutine (not safe for concurrent use).
//
//   - new: first time this seq is seen and it is not below the highest seen;
//   - ooo (out of order): first time seen, but a higher seq arrived before it;
//   - dup: seen before.
//
// Lost messages are not known here: they are expected-minus-unique, computed
// by whoever knows how many messages were sent.
type seqTracker struct {
	seen []uint64 // bitset of seqs seen
	next uint64   // highest seq seen + 1 (0: none yet)
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
	if s >= t.next {
		t.next = s + 1
		return seqNew
	}
	return seqOOO
}
