package bridge

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestCanMove(t *testing.T) {
	all := []CommandState{CommandQueued, CommandSent, CommandDelivered, CommandSucceeded,
		CommandFailed, CommandExpired, CommandCanceled}
	allowed := map[[2]CommandState]bool{
		{CommandQueued, CommandSent}: true, {CommandQueued, CommandDelivered}: true,
		{CommandQueued, CommandCanceled}: true, {CommandSent, CommandDelivered}: true,
		{CommandSent, CommandCanceled}: true,
	}
	for _, from := range []CommandState{CommandQueued, CommandSent, CommandDelivered} {
		for _, to := range []CommandState{CommandSucceeded, CommandFailed, CommandExpired} {
			allowed[[2]CommandState{from, to}] = true
		}
	}
	for _, from := range all {
		for _, to := range append(all, "bogus") {
			if got := CanMove(from, to); got != allowed[[2]CommandState{from, to}] {
				t.Errorf("CanMove(%s, %s) = %v", from, to, got)
			}
		}
	}
}

func TestCommandJSONRoundTrip(t *testing.T) {
	at := time.Date(2031, 1, 2, 3, 4, 5, 6e6, time.UTC)
	c := Command{ID: "000000000000000a", Device: "d1", Name: "x", Params: json.RawMessage(`{"a":1}`),
		State: CommandFailed, Created: at, Expires: at.Add(time.Hour), Updated: at.Add(time.Second),
		Status: StatusError, Result: json.RawMessage(`{"e":2}`), Message: "m"}
	b, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"created":"2031-01-02T03:04:05.006Z"`) {
		t.Fatalf("times in %s: want RFC 3339 UTC milliseconds", b)
	}
	var back Command
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if back.ID != c.ID || !back.Created.Equal(c.Created) || !back.Expires.Equal(c.Expires) || back.State != c.State ||
		string(back.Result) != string(c.Result) || back.Message != c.Message || back.Status != c.Status {
		t.Fatalf("round trip %+v, want %+v", back, c)
	}
	ev := string(EncodeCommandEvent("commands/d1", &c))
	if !strings.HasPrefix(ev, `{"topic":"commands/d1","id":"000000000000000a"`) {
		t.Fatalf("event data %s", ev)
	}
	if f := string(EncodeCommandFrame(&c)); f != `{"type":"command","id":"000000000000000a","name":"x","params":{"a":1},"expires":"2031-01-02T04:04:05.006Z"}` {
		t.Fatalf("frame %s", f)
	}
	if p := string(EncodeCommandPublish(&c)); strings.Contains(p, "type") || !strings.Contains(p, `"params":{"a":1}`) {
		t.Fatalf("publish %s", p)
	}
}

func TestParseCommandFrame(t *testing.T) {
	good := []struct {
		in   string
		want CommandAnswer
	}{
		{`{"type":"command_ack","id":"c1"}`, CommandAnswer{ID: "c1"}},
		{`{"type":"command_result","id":"c1","status":"ok","result":{ "a" : 1 }}`,
			CommandAnswer{ID: "c1", IsResult: true, Status: "ok", Result: json.RawMessage(`{"a":1}`)}},
		{`{"type":"command_result","id":"c1","status":"error","message":"no","result":null,"x":1}`,
			CommandAnswer{ID: "c1", IsResult: true, Status: "error", Message: "no"}},
	}
	for _, g := range good {
		got, err := ParseCommandFrame([]byte(g.in))
		if err != nil || got.ID != g.want.ID || got.IsResult != g.want.IsResult || got.Status != g.want.Status ||
			string(got.Result) != string(g.want.Result) || got.Message != g.want.Message {
			t.Errorf("ParseCommandFrame(%s) = %+v, %v; want %+v", g.in, got, err, g.want)
		}
	}
	bad := []string{
		``, `[]`, `{`, `{"type":"command_ack"}`, `{"type":"command_ack","id":""}`,
		`{"type":"command_ack","id":"` + strings.Repeat("a", 65) + `"}`, `{"id":"c1"}`,
		`{"type":"telemetry","id":"c1"}`, `{"type":"command_result","id":"c1"}`,
		`{"type":"command_result","id":"c1","status":"fine"}`,
		`{"type":"command_result","id":"c1","status":"ok","result":[1]}`,
		`{"type":"command_result","id":"c1","status":"ok","message":"` + strings.Repeat("m", MaxCommandMessage+1) + `"}`,
		`{"type":1,"id":"c1"}`, "{\"type\":\"command_ack\",\"id\":\"\xff\"}",
	}
	for _, b := range bad {
		var be *Error
		if _, err := ParseCommandFrame([]byte(b)); !errors.As(err, &be) || be.Code != CodeBadRequest {
			t.Errorf("ParseCommandFrame(%q) err %v, want a bad_request *Error", b, err)
		}
	}
}

func TestParseCommandResult(t *testing.T) {
	got, err := ParseCommandResult("c9", []byte(`{"status":"ok","result":{"v":1},"message":"m"}`))
	if err != nil || got.ID != "c9" || !got.IsResult || got.FinalState() != CommandSucceeded || got.Message != "m" {
		t.Fatalf("got %+v, %v", got, err)
	}
	if got, _ := ParseCommandResult("c9", []byte(`{"status":"error"}`)); got.FinalState() != CommandFailed {
		t.Fatalf("error status → %s", got.FinalState())
	}
	for _, b := range []string{`{}`, `"ok"`, `{"status":"ok","result":"x"}`, `{"status":"ok"`} {
		if _, err := ParseCommandResult("c9", []byte(b)); err == nil {
			t.Errorf("ParseCommandResult(%s): no error", b)
		}
	}
}

func TestParseFrameRecognizesCommandAnswers(t *testing.T) {
	for _, typ := range []string{FrameCommandAck, FrameCommandResult} {
		f, err := ParseFrame([]byte(`{"type":"` + typ + `","id":"c1","result":{"a":[1]}}`))
		if err != nil || f.Type != typ {
			t.Errorf("ParseFrame(%s) = %+v, %v", typ, f, err)
		}
	}
}

func FuzzParseCommandFrame(f *testing.F) {
	for _, s := range []string{
		`{"type":"command_ack","id":"c1"}`,
		`{"type":"command_result","id":"c1","status":"ok","result":{"a":1},"message":"m"}`,
		`{"type":"command_result","id":"c1","status":"error","result":null}`, `{"status":"ok"}`, `[]`, `{"id":1}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := ParseCommandFrame(b)
		if err != nil {
			var be *Error
			if !errors.As(err, &be) {
				t.Fatalf("error %v is not a *Error", err)
			}
			return
		}
		if a.ID == "" || a.IsResult && a.Status != StatusOK && a.Status != StatusError {
			t.Fatalf("accepted %q as %+v", b, a)
		}
		if len(a.Result) > 0 && !json.Valid(a.Result) {
			t.Fatalf("result %q is not JSON", a.Result)
		}
		r, err := ParseCommandResult(a.ID, b)
		if a.IsResult && (err != nil || r.Status != a.Status) {
			t.Fatalf("the same result parsed as MQTT payload: %+v, %v", r, err)
		}
	})
}
