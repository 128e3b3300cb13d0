package commands

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/telehub/telehub/bridge"
	"github.com/telehub/telehub/internal/topic"
)

// ErrBadPeerCommand is wrapped by every error of DecodePeer.
var ErrBadPeerCommand = errors.New("invalid peer command")

// maxPeerCommand bounds a peer's command message: the params, the device's
// result and the other members.
const maxPeerCommand = MaxParams + 64<<10

// EncodePeer returns the message that tells the peer hubs of a change of
// c: the command object, as the REST API shows it, after the change.
func EncodePeer(c *bridge.Command) []byte {
	b, err := json.Marshal(c)
	if err != nil { // params and result are checked JSON
		panic("commands: encode peer command: " + err.Error())
	}
	return b
}

// DecodePeer parses a peer hub's command message for device (the device of
// its topic): a command object of that device with an id, a name, a known
// state and its times.
func DecodePeer(device string, b []byte) (bridge.Command, error) {
	if len(b) > maxPeerCommand {
		return bridge.Command{}, fmt.Errorf("%w: %d bytes", ErrBadPeerCommand, len(b))
	}
	var c bridge.Command
	if err := json.Unmarshal(b, &c); err != nil {
		return bridge.Command{}, fmt.Errorf("%w: %w", ErrBadPeerCommand, err)
	}
	if err := checkPeer(device, &c); err != nil {
		return bridge.Command{}, fmt.Errorf("%w: %w", ErrBadPeerCommand, err)
	}
	return c, nil
}

// checkPeer checks the members of a peer's command.
func checkPeer(device string, c *bridge.Command) error {
	switch {
	case c.Device != device:
		return fmt.Errorf("device %q in a message of device %q", c.Device, device)
	case topic.ValidDeviceID(device) != nil:
		return fmt.Errorf("device %q: not a device id", device)
	case c.ID == "" || len(c.ID) > 64 || strings.ContainsAny(c.ID, "/+#\x00"):
		return fmt.Errorf("id %q: not a command id", c.ID)
	case topic.ValidMetric(c.Name) != nil:
		return fmt.Errorf("name %q: not a command name", c.Name)
	case !c.State.Valid():
		return fmt.Errorf("state %q: unknown", c.State)
	case len(c.Params) > 0 && !bytes.HasPrefix(c.Params, []byte("{")):
		return errors.New("params: not a JSON object")
	case c.Status != "" && c.Status != bridge.StatusOK && c.Status != bridge.StatusError:
		return fmt.Errorf("status %q: unknown", c.Status)
	}
	return nil
}
