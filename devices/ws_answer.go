package devices

import (
	"strconv"

	"github.com/telehub/telehub/internal/jsonx"
	"github.com/telehub/telehub/internal/wsframe"
)

// appendAnswerFrame appends a's answer as an unmasked text frame.
func appendAnswerFrame(b []byte, a *answer) []byte {
	b, start := wsframe.Begin(b)
	b = appendAnswerJSON(b, a)
	return wsframe.End(b, start, wsframe.OpText)
}

// appendAnswerJSON appends {"type":"ack","seq":N} or
// {"type":"error","seq":N,"code":…,"message":…}, seq only when known.
func appendAnswerJSON(b []byte, a *answer) []byte {
	if a.err == nil {
		b = append(b, `{"type":"ack"`...)
	} else {
		b = append(b, `{"type":"error"`...)
	}
	if a.hasSeq {
		b = append(b, `,"seq":`...)
		b = strconv.AppendUint(b, a.seq, 10)
	}
	if a.err != nil {
		b = append(b, `,"code":`...)
		b = jsonx.AppendString(b, jsonx.Truncate(a.err.Code, maxAnswerMessage))
		b = append(b, `,"message":`...)
		b = jsonx.AppendString(b, jsonx.Truncate(a.err.Message, maxAnswerMessage))
	}
	return append(b, '}')
}
