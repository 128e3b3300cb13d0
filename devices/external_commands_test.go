package devices

import (
	"fmt"
	"slices"
	"testing"

	"github.com/telehub/telehub/bridge"
)

// nopCommander takes every answer and ignores devices coming online.
type nopCommander struct{}

func (nopCommander) Connected(string)                          {}
func (nopCommander) Answer(string, bridge.CommandAnswer) error { return nil }

func TestExternalCommandsQueueIsASetWithABound(t *testing.T) {
	c := newExternalCommands(nopCommander{})
	for range 3 {
		if !c.online("d1") {
			t.Fatal("d1 refused")
		}
	}
	if got := c.take(); !slices.Equal(got, []string{"d1"}) {
		t.Fatalf("take = %v, want d1 once", got)
	}
	for i := range externalCommandBacklog {
		if !c.online(fmt.Sprintf("d%d", i)) {
			t.Fatalf("device %d refused below the bound", i)
		}
	}
	if !c.online("d0") {
		t.Fatal("a device already queued is refused at the bound")
	}
	if c.online("one-too-many") {
		t.Fatal("a device past the bound is queued")
	}
	if got := len(c.take()); got != externalCommandBacklog {
		t.Fatalf("took %d, want %d", got, externalCommandBacklog)
	}
	if len(c.take()) != 0 {
		t.Fatal("take does not empty the queue")
	}
}

func TestExternalCommandsOff(t *testing.T) {
	c := newExternalCommands(nil)
	if !c.online("d1") || len(c.take()) != 0 {
		t.Fatal("with commands off, nothing is queued")
	}
	filters := externalFilters("")
	n := len(filters)
	externalCommandFilters(filters, sharePrefix("g"))
	if len(filters) != n+2 || filters["$share/g/devices/+/commands/+/ack"] != 1 || filters["$share/g/devices/+/commands/+/result"] != 1 {
		t.Fatalf("filters %v", filters)
	}
}
