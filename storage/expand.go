package storage

import (
	"bytes"

	bolt "go.etcd.io/bbolt"

	"github.com/telehub/telehub/internal/topic"
)

// indexTopics returns the index form of every topic in the index that one
// of filters matches, and whether the index should answer: false when
// there are no filters, a filter starts with '#' (it matches nearly
// everything: the log is the better source), or the filters match more
// than maxIndexTopics topics or need more than maxIndexSeeks lookups.
func indexTopics(tx *bolt.Tx, filters []topic.Filter) ([][]byte, bool) {
	if len(filters) == 0 {
		return nil, false
	}
	x := expander{c: tx.Bucket(bucketTopics).Cursor(), seeks: maxIndexSeeks, seen: map[string]bool{}}
	for _, f := range filters {
		levels := f.Levels()
		if levels[0] == topic.MultiLevel || !x.walk(nil, 0, levels) {
			return nil, false
		}
	}
	return x.topics, true
}

// expander finds the topics of the index a filter matches, walking the
// index like a tree of levels: a literal level is followed directly, '+'
// visits each value present at its level, '#' collects every topic below.
type expander struct {
	c      *bolt.Cursor
	seeks  int // lookups left
	seen   map[string]bool
	topics [][]byte
}

// seek positions the cursor at the first key not below k and returns it;
// nil when past the end or out of lookups.
func (x *expander) seek(k []byte) []byte {
	if x.seeks == 0 {
		return nil
	}
	x.seeks--
	key, _ := x.c.Seek(k)
	return key
}

// ok reports whether the walk stayed within its bounds.
func (x *expander) ok() bool { return x.seeks > 0 && len(x.topics) <= maxIndexTopics }

// walk collects the topics under prefix (the index form of depth levels)
// that levels match, and reports whether it stayed within bounds.
func (x *expander) walk(prefix []byte, depth int, levels []string) bool {
	if len(levels) == 0 {
		x.exact(prefix)
		return x.ok()
	}
	switch l := levels[0]; l {
	case topic.MultiLevel:
		return x.below(prefix, depth)
	case topic.SingleLevel:
		return x.eachValue(prefix, depth, levels[1:])
	default:
		return x.walk(child(prefix, depth, []byte(l)), depth+1, levels[1:])
	}
}

// child returns the index form of prefix followed by level l.
func child(prefix []byte, depth int, l []byte) []byte {
	out := append([]byte(nil), prefix...)
	if depth > 0 {
		out = append(out, sepLevel)
	}
	return append(out, l...)
}

// exact collects topic when it has index entries.
func (x *expander) exact(topic []byte) {
	k := x.seek(append(append([]byte(nil), topic...), sepEnd))
	if t, _, ok := indexedTopic(k); ok && bytes.Equal(t, topic) {
		x.add(t)
	}
}

func (x *expander) add(topic []byte) {
	if !x.seen[string(topic)] {
		x.seen[string(topic)] = true
		x.topics = append(x.topics, bytes.Clone(topic))
	}
}

// below collects prefix itself ('#' matches its parent level) and every
// topic under it.
func (x *expander) below(prefix []byte, depth int) bool {
	var under []byte
	if depth > 0 {
		x.exact(prefix)
		under = append(append([]byte(nil), prefix...), sepLevel)
	}
	for k := x.seek(under); hasIndexPrefix(k, under) && x.ok(); {
		t, _, ok := indexedTopic(k)
		if !ok {
			return false
		}
		x.add(t)
		k = x.seek(append(bytes.Clone(t), sepLevel))
	}
	return x.ok()
}

// eachValue walks the rest of the filter under each value present at the
// level after prefix.
func (x *expander) eachValue(prefix []byte, depth int, rest []string) bool {
	var under []byte
	if depth > 0 {
		under = append(append([]byte(nil), prefix...), sepLevel)
	}
	for k := x.seek(under); hasIndexPrefix(k, under) && x.ok(); {
		v := k[len(under):]
		if end := bytes.IndexAny(v, string([]byte{sepEnd, sepLevel})); end >= 0 {
			v = v[:end]
		}
		value := bytes.Clone(v)
		if !x.walk(child(prefix, depth, value), depth+1, rest) {
			return false
		}
		k = x.seek(append(append(bytes.Clone(under), value...), sepNext))
	}
	return x.ok()
}
