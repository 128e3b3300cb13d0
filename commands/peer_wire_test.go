package commands

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/telehub/telehub/bridge"
)

func TestPeerWireRoundTrip(t *testing.T) {
	c := peerCommand("d1", bridge.CommandSucceeded)
	c.Params, c.Status, c.Result, c.Message = json.RawMessage(`{"s":5}`), bridge.StatusOK, json.RawMessage(`{"ok":1}`), "done"
	got, err := DecodePeer("d1", EncodePeer(&c))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(EncodePeer(&got), EncodePeer(&c)) || !got.Created.Equal(c.Created) {
		t.Fatalf("decoded %+v, want %+v", got, c)
	}
}

func TestDecodePeerRejections(t *testing.T) {
	good := string(EncodePeer(&bridge.Command{ID: "0123456789ab-0000000000000003", Device: "d1", Name: "reboot",
		State: bridge.CommandQueued, Created: t0, Expires: t0, Updated: t0}))
	tests := []struct {
		name, device, msg, mention string
	}{
		{"not JSON", "d1", "{", "unexpected end"},
		{"too long", "d1", strings.Repeat(" ", maxPeerCommand+1), "bytes"},
		{"another device", "d2", good, "device"},
		{"a bad device id", "a/b", strings.Replace(good, `"d1"`, `"a/b"`, 1), "not a device id"},
		{"no id", "d1", strings.Replace(good, `"0123456789ab-0000000000000003"`, `""`, 1), "not a command id"},
		{"an id with a slash", "d1", strings.Replace(good, `"0123456789ab-0000000000000003"`, `"a/b"`, 1), "not a command id"},
		{"a bad name", "d1", strings.Replace(good, `"reboot"`, `"re boot"`, 1), "name"},
		{"an unknown state", "d1", strings.Replace(good, `"queued"`, `"lost"`, 1), "state"},
		{"params not an object", "d1", strings.Replace(good, `"state"`, `"params":[1],"state"`, 1), "params"},
		{"an unknown status", "d1", strings.Replace(good, `"state"`, `"status":"maybe","state"`, 1), "status"},
		{"a bad time", "d1", strings.Replace(good, `"created":"`, `"created":"x`, 1), "parsing time"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := DecodePeer(tt.device, []byte(tt.msg))
			if !errors.Is(err, ErrBadPeerCommand) || !strings.Contains(err.Error(), tt.mention) {
				t.Fatalf("err %v, want ErrBadPeerCommand mentioning %q", err, tt.mention)
			}
		})
	}
}

// FuzzDecodePeer: DecodePeer never panics, and what it accepts encodes to
// a message it accepts again as the same command. Seeds:
// testdata/fuzz/FuzzDecodePeer.
func FuzzDecodePeer(f *testing.F) {
	f.Fuzz(func(t *testing.T, device string, msg []byte) {
		c, err := DecodePeer(device, msg)
		if err != nil {
			if !errors.Is(err, ErrBadPeerCommand) {
				t.Fatalf("err %v does not wrap ErrBadPeerCommand", err)
			}
			return
		}
		again, err := DecodePeer(device, EncodePeer(&c))
		if err != nil || !bytes.Equal(EncodePeer(&again), EncodePeer(&c)) {
			t.Fatalf("accepted %q as %+v, encoded and decoded again: %+v, %v", msg, c, again, err)
		}
	})
}
