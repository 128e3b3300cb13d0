package bridge

// Frame is one WebSocket device frame.
type Frame struct {
	Type    string
	Seq     uint64
	HasSeq  bool
	Payload Payload
}

// ParseFrame parses a WebSocket device frame.
func ParseFrame(b []byte) (Frame, error) { return Frame{}, Errorf("bad frame") }
