package firmwaresim

// entry is one reading in a device's store-and-forward buffer.
type entry struct {
	seq    uint64
	ts     int64  // the device's time of the reading, Unix milliseconds
	noTS   bool   // the device has no clock: ts is not sent
	boot   string // boot id of the reading's seq epoch; "" without one
	idx    int    // the reading's number on its device (verify log index)
	r      Reading
	sentAt int64  // when it was last transmitted, ns since the run started
	sends  uint32 // transmissions so far
	done   bool   // confirmed, or handed to a transport that has no acks
}

// sfBuffer is a device's bounded, in-order store-and-forward buffer.
// Readings enter at the tail in seq order and leave at the head once done,
// so it always holds the contiguous seqs [first, first+len). A cursor marks
// the next entry to transmit; after a reconnect it goes back to the head and
// every entry not yet done is sent again with its original seq. When the
// buffer is full the oldest entry is discarded, as firmware with a fixed
// flash ring would. The caller serializes access.
type sfBuffer struct {
	items []entry // ring; grows by doubling up to max
	head  int     // index in items of the oldest entry
	n     int     // entries held
	next  int     // offset from head of the next entry to transmit
	max   int
}

// newBuffer returns an empty buffer holding at most max entries.
func newBuffer(max int) *sfBuffer {
	return &sfBuffer{max: max}
}

// Len returns the number of entries held, done or not.
func (b *sfBuffer) Len() int { return b.n }

// at returns the entry at offset i from the head.
func (b *sfBuffer) at(i int) *entry { return &b.items[(b.head+i)%len(b.items)] }

// Push appends e. When the buffer is full it first discards the oldest
// entry and returns it with evicted true.
func (b *sfBuffer) Push(e entry) (old entry, evicted bool) {
	if b.n == b.max {
		old, evicted = *b.at(0), true
		b.popHead()
	}
	if b.n == len(b.items) {
		b.grow()
	}
	*b.at(b.n) = e
	b.n++
	return old, evicted
}

func (b *sfBuffer) grow() {
	size := min(max(2*len(b.items), 4), b.max)
	items := make([]entry, size)
	for i := range b.n {
		items[i] = *b.at(i)
	}
	b.items, b.head = items, 0
}

func (b *sfBuffer) popHead() {
	b.head = (b.head + 1) % len(b.items)
	b.n--
	if b.next > 0 {
		b.next--
	}
}

// NextToSend returns the next entry to transmit and moves the cursor past
// it, skipping entries already done; nil when everything was transmitted.
// The pointer is valid until the buffer changes.
func (b *sfBuffer) NextToSend() *entry {
	for b.next < b.n {
		e := b.at(b.next)
		b.next++
		if !e.done {
			return e
		}
	}
	return nil
}

// HasUnsent reports whether NextToSend would return an entry.
func (b *sfBuffer) HasUnsent() bool {
	for i := b.next; i < b.n; i++ {
		if !b.at(i).done {
			return true
		}
	}
	return false
}

// Rewind makes every entry not yet done due for transmission again.
func (b *sfBuffer) Rewind() { b.next = 0 }

// Get returns the entry of seq, or nil when the buffer does not hold it.
func (b *sfBuffer) Get(seq uint64) *entry {
	if b.n == 0 {
		return nil
	}
	first := b.at(0).seq
	if seq < first || seq-first >= uint64(b.n) {
		return nil
	}
	return b.at(int(seq - first))
}

// Complete marks the entry of seq done and drops done entries from the
// head. It returns a copy of the entry and true when seq was held and not
// yet done.
func (b *sfBuffer) Complete(seq uint64) (entry, bool) {
	e := b.Get(seq)
	if e == nil || e.done {
		return entry{}, false
	}
	e.done = true
	got := *e
	for b.n > 0 && b.at(0).done {
		b.popHead()
	}
	return got, true
}

// Pending returns the number of entries not yet done.
func (b *sfBuffer) Pending() int {
	pending := 0
	for i := range b.n {
		if !b.at(i).done {
			pending++
		}
	}
	return pending
}

// EachPending calls fn with every entry not yet done, oldest first.
func (b *sfBuffer) EachPending(fn func(*entry)) {
	for i := range b.n {
		if e := b.at(i); !e.done {
			fn(e)
		}
	}
}
