package stream

import (
	"strings"

	"github.com/telehub/telehub/internal/topic"
)

// index is the subscription index: a trie of filter levels where '+' and
// '#' have nodes of their own. Matching a topic walks one path per '+'
// branch, so its cost depends on the filters that could match, not on the
// number of watchers. It is guarded by Hub.mu.
type index struct {
	root node
}

// node is one filter level. subs are the subscriptions whose filter ends
// here.
type node struct {
	parent   *node
	level    string // the level this node stands for, "+" and "#" included
	children map[string]*node
	plus     *node
	hash     *node
	subs     []*sub
}

// sub is one watcher's subscription to one filter, placed at its node.
type sub struct {
	w      *watcher
	filter topic.Filter
	n      *node
	i      int    // position in n.subs
	since  uint64 // last published id when it was added: later events went out live
}

// add places a subscription of w to filter, split into levels, and returns it.
func (x *index) add(w *watcher, filter topic.Filter, levels []string) *sub {
	n := &x.root
	for _, l := range levels {
		n = n.child(l)
	}
	s := &sub{w: w, filter: filter, n: n, i: len(n.subs)}
	n.subs = append(n.subs, s)
	return s
}

// child returns n's child for level l, creating it when missing.
func (n *node) child(l string) *node {
	slot := n.slot(l)
	if slot != nil {
		return slot
	}
	c := &node{parent: n, level: l}
	switch l {
	case "+":
		n.plus = c
	case "#":
		n.hash = c
	default:
		if n.children == nil {
			n.children = make(map[string]*node)
		}
		n.children[l] = c
	}
	return c
}

// slot returns n's child for level l, or nil.
func (n *node) slot(l string) *node {
	switch l {
	case "+":
		return n.plus
	case "#":
		return n.hash
	}
	return n.children[l]
}

// remove takes s out of the index and drops the nodes left empty.
func (x *index) remove(s *sub) {
	n := s.n
	last := len(n.subs) - 1
	moved := n.subs[last]
	n.subs[s.i] = moved
	moved.i = s.i
	n.subs[last] = nil
	n.subs = n.subs[:last]
	s.n = nil
	for n != &x.root && n.empty() {
		n.parent.drop(n)
		n = n.parent
	}
}

// empty reports whether n holds no subscription and no child.
func (n *node) empty() bool {
	return len(n.subs) == 0 && len(n.children) == 0 && n.plus == nil && n.hash == nil
}

// drop detaches the child c from n.
func (n *node) drop(c *node) {
	switch c.level {
	case "+":
		n.plus = nil
	case "#":
		n.hash = nil
	default:
		delete(n.children, c.level)
	}
}

// match appends to out the watcher of every subscription whose filter
// matches topic, following MQTT rules: '+' is exactly one level, '#' any
// number of levels including none ("a/#" matches "a"); like
// topic.Filter.Match. A watcher appears once per matching filter.
func (x *index) match(topic string, out []*watcher) []*watcher {
	if strings.HasPrefix(topic, "$") {
		// As in MQTT, wildcards in the first level do not match '$' topics.
		level, rest, more := cutLevel(topic)
		if c := x.root.children[level]; c != nil {
			return c.match(rest, more, out)
		}
		return out
	}
	return x.root.match(topic, true, out)
}

// match matches the levels in rest (none left when more is false) below n.
func (n *node) match(rest string, more bool, out []*watcher) []*watcher {
	if n.hash != nil {
		out = appendWatchers(out, n.hash.subs)
	}
	if !more {
		return appendWatchers(out, n.subs)
	}
	level, tail, more := cutLevel(rest)
	if c := n.children[level]; c != nil {
		out = c.match(tail, more, out)
	}
	if n.plus != nil {
		out = n.plus.match(tail, more, out)
	}
	return out
}

// cutLevel splits the first level off a topic.
func cutLevel(topic string) (level, rest string, more bool) {
	i := strings.IndexByte(topic, '/')
	if i < 0 {
		return topic, "", false
	}
	return topic[:i], topic[i+1:], true
}

// appendWatchers appends the watchers of subs to out.
func appendWatchers(out []*watcher, subs []*sub) []*watcher {
	for _, s := range subs {
		out = append(out, s.w)
	}
	return out
}
