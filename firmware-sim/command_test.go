package firmwaresim

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestParseInterval(t *testing.T) {
	tests := []struct {
		params string
		want   time.Duration
		err    string // part of the error; "" for none
	}{
		{`{"interval":"500ms"}`, 500 * time.Millisecond, ""},
		{`{"interval":"2s"}`, 2 * time.Second, ""},
		{`{"interval":250}`, 250 * time.Millisecond, ""},
		{`{"interval":2.5}`, 2500 * time.Microsecond, ""},
		{`{"interval":"24h"}`, 24 * time.Hour, ""},
		{``, 0, `params need "interval"`},
		{`{}`, 0, `params need "interval"`},
		{`{"interval":null}`, 0, `params need "interval"`},
		{`[1]`, 0, "params must be a JSON object"},
		{`{"interval":"fast"}`, 0, `interval "fast" is not a duration`},
		{`{"interval":"1ms"}`, 0, "out of range"},
		{`{"interval":"25h"}`, 0, "out of range"},
		{`{"interval":-5}`, 0, "out of range"},
		{`{"interval":1e300}`, 0, "out of range"},
		{`{"interval":true}`, 0, "neither a duration string nor a number"},
		{`{"interval":{"ms":5}}`, 0, "neither a duration string nor a number"},
	}
	for _, tt := range tests {
		t.Run(tt.params, func(t *testing.T) {
			got, err := parseInterval(json.RawMessage(tt.params))
			if tt.err == "" {
				if err != nil || got != tt.want {
					t.Fatalf("got %s, %v; want %s", got, err, tt.want)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Fatalf("got %s, %v; want an error with %q", got, err, tt.err)
			}
		})
	}
}

func TestParseCommand(t *testing.T) {
	c, err := parseCommand([]byte(`{"id":"0000000000000007","name":"set_interval","params":{"interval":"1s"},"expires":"2030-01-01T00:00:00.000Z"}`))
	if err != nil || c.ID != "0000000000000007" || c.Name != "set_interval" || string(c.Params) != `{"interval":"1s"}` {
		t.Fatalf("got %+v, %v", c, err)
	}
	if c, err := parseCommand([]byte(`{"id":"a","name":"ping","params":null}`)); err != nil || c.Params != nil {
		t.Fatalf("null params: %+v, %v", c, err)
	}
	for _, bad := range []string{
		`not json`, `{"name":"ping"}`, `{"id":"","name":"ping"}`, `{"id":"a/b","name":"ping"}`,
		`{"id":"a+","name":"ping"}`, `{"id":"` + strings.Repeat("x", 65) + `","name":"ping"}`,
		`{"id":"a"}`, `{"id":7,"name":"ping"}`,
	} {
		if _, err := parseCommand([]byte(bad)); !errors.Is(err, ErrBadCommand) {
			t.Errorf("%s: err %v, want ErrBadCommand", bad, err)
		}
	}
}

func TestParseHubFrameCommand(t *testing.T) {
	f, err := parseHubFrame([]byte(`{"type":"command","id":"c1","name":"ping","expires":"2030-01-01T00:00:00.000Z"}`))
	if err != nil || f.Kind != frameCommand || f.Cmd == nil || f.Cmd.ID != "c1" || f.Cmd.Name != "ping" {
		t.Fatalf("got %+v, %v", f, err)
	}
	if _, err := parseHubFrame([]byte(`{"type":"command","id":"c/1","name":"ping"}`)); !errors.Is(err, ErrBadHubFrame) || !errors.Is(err, ErrBadCommand) {
		t.Fatalf("bad id: err %v", err)
	}
}

func TestCommandResultWireForms(t *testing.T) {
	ok := &commandResult{id: "c1", ok: true, result: json.RawMessage(`{"pong":true}`)}
	bad := &commandResult{id: "c2", message: `unknown command "x"`}
	for _, tt := range []struct{ got, want string }{
		{string(ok.wsFrame()), `{"type":"command_result","id":"c1","status":"ok","result":{"pong":true}}`},
		{string(bad.wsFrame()), `{"type":"command_result","id":"c2","status":"error","message":"unknown command \"x\""}`},
		{string(ok.mqttPayload()), `{"status":"ok","result":{"pong":true}}`},
		{string(bad.mqttPayload()), `{"status":"error","message":"unknown command \"x\""}`},
		{string(wsCommandAck("c1")), `{"type":"command_ack","id":"c1"}`},
		{string(rebootResult("r", "").result), `{"rebooted":true}`},
		{string(rebootResult("r", "mi-1").result), `{"rebooted":true,"boot":"mi-1"}`},
	} {
		if tt.got != tt.want {
			t.Errorf("got %s, want %s", tt.got, tt.want)
		}
	}
}

// FuzzParseCommand: no payload panics the command parser or the
// set_interval params parser, a command read has a valid id, and an
// interval read is within its bounds.
func FuzzParseCommand(f *testing.F) {
	for _, s := range []string{`{"id":"c1","name":"set_interval","params":{"interval":"500ms"}}`,
		`{"id":"c2","name":"set_interval","params":{"interval":250}}`, `{"id":"c3","name":"ping"}`, `{}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := parseCommand(b)
		if err != nil {
			return
		}
		if !validCommandID(c.ID) || c.Name == "" {
			t.Fatalf("read %+v from %q", c, b)
		}
		if d, err := parseInterval(c.Params); err == nil && (d < minInterval || d > maxInterval) {
			t.Fatalf("interval %s from %q", d, b)
		}
	})
}
