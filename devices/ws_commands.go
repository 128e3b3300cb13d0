package devices

import (
	"github.com/telehub/telehub/bridge"
	"github.com/telehub/telehub/internal/wsframe"
)

// Reachable reports whether device has a WebSocket connection now.
func (s *WS) Reachable(device string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.devices[device] != nil
}

// SendCommand queues c as a command frame on device's connection; false
// when the device has none. A frame queued on a connection that dies is
// lost: the command stays unconfirmed and goes again on the next
// connection.
func (s *WS) SendCommand(device string, c *bridge.Command) bool {
	s.mu.Lock()
	conn := s.devices[device]
	s.mu.Unlock()
	if conn == nil {
		return false
	}
	return conn.queueCommand(bridge.EncodeCommandFrame(c))
}

// queueCommand queues the JSON of a command frame. The commands a
// connection holds are bounded by the device's pending commands.
func (c *wsConn) queueCommand(frame []byte) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.dead {
		return false
	}
	c.commands = append(c.commands, frame)
	c.startWriter()
	return true
}

// encodeCommands appends the queued command frames. c.mu must be held.
func (c *wsConn) encodeCommands(b []byte) []byte {
	for i, f := range c.commands {
		b = wsframe.AppendFrame(b, wsframe.OpText, f)
		c.commands[i] = nil
	}
	c.commands = c.commands[:0]
	return b
}

// commandAnswer handles a command_ack or command_result frame. A refused
// answer is recorded and answered like any bad frame.
func (c *wsConn) commandAnswer(in bridge.Input, data []byte) {
	cmds := c.ws.cfg.Commands
	if cmds == nil {
		c.reject(in, bridge.Frame{}, bridge.Errorf("command answers are not accepted: commands are off"))
		return
	}
	a, err := bridge.ParseCommandFrame(data)
	if err == nil {
		err = cmds.Answer(c.device(), a)
	}
	if err != nil {
		c.reject(in, bridge.Frame{}, err)
	}
}
