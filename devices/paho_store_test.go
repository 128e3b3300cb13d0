package devices

import (
	"fmt"
	"slices"
	"testing"

	"github.com/eclipse/paho.mqtt.golang/packets"
)

func TestOrderedStoreKeepsPutOrder(t *testing.T) {
	s := newOrderedStore()
	pk := func(id uint16) packets.ControlPacket {
		p := packets.NewControlPacket(packets.Publish).(*packets.PublishPacket)
		p.MessageID = id
		return p
	}
	for _, id := range []uint16{9, 2, 7, 4} {
		s.Put(fmt.Sprintf("o.%d", id), pk(id))
	}
	s.Del("o.2")
	s.Put("o.7", pk(7)) // put again: keeps its place
	s.Put("o.2", pk(2)) // deleted, then put: goes last
	if got, want := s.All(), []string{"o.9", "o.7", "o.4", "o.2"}; !slices.Equal(got, want) {
		t.Fatalf("All() = %v, want %v", got, want)
	}
	if s.Get("o.4").(*packets.PublishPacket).MessageID != 4 || s.Get("o.1") != nil {
		t.Fatal("Get returned the wrong packet")
	}

	// Many puts and deletes: the order stays, the bookkeeping stays small.
	s.Reset()
	var want []string
	for i := range 10_000 {
		k := fmt.Sprintf("o.%d", i%65535+1)
		s.Put(k, pk(uint16(i%65535+1)))
		if i%10 == 0 {
			want = append(want, k)
			continue
		}
		s.Del(k)
	}
	if got := s.All(); !slices.Equal(got, want) {
		t.Fatalf("All() after churn: %d keys, want %d in put order", len(got), len(want))
	}
	if len(s.order) > 2*len(s.msgs)+64 {
		t.Fatalf("order list holds %d entries for %d packets", len(s.order), len(s.msgs))
	}
}

func TestOrderedStoreDeleted(t *testing.T) {
	s := newOrderedStore()
	closed := func(ch <-chan struct{}) bool {
		select {
		case <-ch:
			return true
		default:
			return false
		}
	}
	if !closed(s.deleted(outboundKey(1))) {
		t.Fatal("deleted of a key never stored: open")
	}
	s.Put(outboundKey(1), packets.NewControlPacket(packets.Publish))
	s.Put(outboundKey(2), packets.NewControlPacket(packets.Publish))
	one, two := s.deleted(outboundKey(1)), s.deleted("o.2")
	s.Put(outboundKey(1), packets.NewControlPacket(packets.Pubrel)) // replaced, not deleted
	if closed(one) || closed(two) {
		t.Fatal("deleted closed while the packets are stored")
	}
	s.Del(outboundKey(1))
	if !closed(one) || closed(two) {
		t.Fatal("Del closed the wrong channel")
	}
	s.Reset() // dropped, not acknowledged
	if closed(two) {
		t.Fatal("Reset closed a deleted channel")
	}
	if len(s.gone) != 0 {
		t.Fatalf("%d keys still watched after Reset", len(s.gone))
	}
}

// The store keeps a copy of a publish and hands out copies: paho writes
// the length of the one it sends and the DUP flag of one it reads back,
// while the connection's writer may still be writing another.
func TestOrderedStoreCopiesPublish(t *testing.T) {
	s := newOrderedStore()
	p := packets.NewControlPacket(packets.Publish).(*packets.PublishPacket)
	p.MessageID, p.Qos, p.Payload = 3, 1, []byte("m")
	s.Put("o.3", p)
	p.RemainingLength = 99 // as paho's writer does
	got := s.Get("o.3").(*packets.PublishPacket)
	got.Dup = true
	again := s.Get("o.3").(*packets.PublishPacket)
	if got == p || again == got || again.Dup || again.RemainingLength == 99 || again.MessageID != 3 || string(again.Payload) != "m" {
		t.Fatalf("Get returned %+v, then %+v, for %+v: want copies of the publish put", got, again, p)
	}
	rel := packets.NewControlPacket(packets.Pubrel)
	s.Put("o.4", rel)
	if s.Get("o.4") != rel {
		t.Fatal("Get of a PUBREL returned another packet")
	}
}
