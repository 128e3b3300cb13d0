package firmwaresim

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/telehub/telehub/internal/config"
)

// The lean load mode against a real hub: every QoS 1 publish is
// acknowledged, in order, and every SSE watcher receives each one.
func TestBenchAgainstHubSSE(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	h := startRealHub(t, func(c *config.Config) { c.DeviceRate = 0 })
	sum, err := RunBench(t.Context(), BenchConfig{
		MQTT: "tcp://" + h.MQTTAddr(), Publishers: 3, Window: 64, Metrics: 5, Duration: 800 * time.Millisecond,
		Warmup: 200 * time.Millisecond, Drain: 30 * time.Second,
		Watchers: 2, WatchSSE: "http://" + h.HTTPAddr(),
	})
	if err != nil {
		t.Fatalf("RunBench: %v", err)
	}
	if sum.Sent == 0 || sum.Acked != sum.Sent || sum.Unacked != 0 || sum.OutOfOrder != 0 {
		t.Fatalf("sent %d acked %d unacked %d out of order %d", sum.Sent, sum.Acked, sum.Unacked, sum.OutOfOrder)
	}
	if sum.PerWatcherMin != sum.Sent || sum.PerWatcherMax != sum.Sent || sum.WatchVia != "sse" {
		t.Fatalf("watchers got %d..%d of %d (%s)", sum.PerWatcherMin, sum.PerWatcherMax, sum.Sent, sum.WatchVia)
	}
	if sum.LatencySamples == 0 || sum.AckLatency.Max == 0 {
		t.Fatalf("no latency: %+v", sum)
	}
}

// Watchers that subscribe on an MQTT broker (here the hub's own, which
// forwards device publishes to subscribers) at QoS 0 publishes.
func TestBenchMQTTWatchers(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	h := startRealHub(t, func(c *config.Config) { c.DeviceRate = 0 })
	broker := "tcp://" + h.MQTTAddr()
	sum, err := RunBench(t.Context(), BenchConfig{
		MQTT: broker, Publishers: 2, QoS0: true, Rate: 400, Duration: 500 * time.Millisecond,
		Warmup: 100 * time.Millisecond, Drain: 30 * time.Second, Watchers: 2, WatchMQTT: broker,
	})
	if err != nil {
		t.Fatalf("RunBench: %v", err)
	}
	if sum.Sent == 0 || sum.Acked != 0 || sum.QoS != 0 || sum.WatchFilter != "devices/+/telemetry" {
		t.Fatalf("summary %+v", sum)
	}
	if sum.PerWatcherMin != sum.Sent || sum.LatencySamples == 0 {
		t.Fatalf("watchers got %d..%d of %d, %d latency samples", sum.PerWatcherMin, sum.PerWatcherMax,
			sum.Sent, sum.LatencySamples)
	}
	var text bytes.Buffer
	if err := sum.WriteText(&text); err != nil || !bytes.Contains(text.Bytes(), []byte("watchers 2 mqtt")) {
		t.Fatalf("text %q, %v", text.String(), err)
	}
}

func TestBenchConfigRejections(t *testing.T) {
	bad := map[string]BenchConfig{
		"window over ids":        {Window: 1 << 16},
		"too many metrics":       {Metrics: 101},
		"negative rate":          {Rate: -1},
		"negative watchers":      {Watchers: -1},
		"warm-up past the run":   {Duration: time.Second, Warmup: 2 * time.Second},
		"bad id prefix":          {IDPrefix: "a b"},
		"broker not tcp":         {MQTT: "ws://127.0.0.1:1883"},
		"watch broker not a url": {WatchMQTT: "127.0.0.1:1883"},
	}
	for name, cfg := range bad {
		t.Run(name, func(t *testing.T) {
			if _, err := RunBench(context.Background(), cfg); !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("RunBench: %v", err)
			}
		})
	}
}

// A publisher whose broker refuses the connection fails the run at once.
func TestBenchConnectRefused(t *testing.T) {
	_, err := RunBench(t.Context(), BenchConfig{MQTT: "tcp://127.0.0.1:1", ConnectTimeout: time.Second})
	if err == nil {
		t.Fatal("RunBench succeeded without a broker")
	}
}

func TestSentMicros(t *testing.T) {
	tests := []struct {
		msg  string
		want int64
		ok   bool
	}{
		{`{"seq":3,"sent_us":1764064800123456}`, 1764064800123456, true},
		{`{"topic":"telemetry/b-0/sent_us","device":"b-0","metric":"sent_us","value":1764064800123456,"ts":"x"}`, 1764064800123456, true},
		{`{"metric":"temp","value":21.5}`, 0, false},
		{`{"sent_us":"soon"}`, 0, false},
		{`{"sent_us":1234567890123456789012}`, 0, false},
		{`{"metric":"sent_us"}`, 0, false},
	}
	for _, tt := range tests {
		got, ok := sentMicros([]byte(tt.msg))
		if got != tt.want && tt.ok || ok != tt.ok {
			t.Errorf("sentMicros(%s) = %d, %v; want %d, %v", tt.msg, got, ok, tt.want, tt.ok)
		}
	}
}

func TestBenchPacketIDWraps(t *testing.T) {
	for seq, want := range map[uint64]uint16{1: 1, 65535: 65535, 65536: 1, 65537: 2} {
		if got := benchPacketID(seq); got != want {
			t.Errorf("benchPacketID(%d) = %d, want %d", seq, got, want)
		}
	}
}

// The packets the bench writes read back as what was written.
func TestBenchMQTTPacketsRoundTrip(t *testing.T) {
	payload := bytes.Repeat([]byte("x"), 300) // a two-byte remaining length
	for _, qos := range []byte{0, 1} {
		pk := appendMQTTPublish(nil, "devices/b-1/telemetry", qos, 513, payload)
		r := mqttReader{r: bufio.NewReader(bytes.NewReader(append(pk, mqttDisconnectPacket...)))}
		typ, flags, body, err := r.next()
		if err != nil || typ != mqttPublish || flags != qos<<1 {
			t.Fatalf("qos %d: type %d flags %d err %v", qos, typ, flags, err)
		}
		got, err := mqttPublishPayload(flags, body)
		if err != nil || !bytes.Equal(got, payload) {
			t.Fatalf("qos %d: payload of %d bytes, %v", qos, len(got), err)
		}
		if typ, _, _, err := r.next(); err != nil || typ != mqttDisconnect {
			t.Fatalf("qos %d: then type %d, %v", qos, typ, err)
		}
	}
}

func TestBenchMQTTReaderRejects(t *testing.T) {
	for name, in := range map[string][]byte{
		"length over 4 bytes": {0x30, 0xff, 0xff, 0xff, 0xff, 0x01},
		"short body":          {0x30, 0x05, 0x00},
	} {
		r := mqttReader{r: bufio.NewReader(bytes.NewReader(in))}
		if _, _, _, err := r.next(); err == nil {
			t.Errorf("%s: read", name)
		}
	}
	// A remaining length of 256 MiB is refused before anything is allocated.
	huge := mqttReader{r: bufio.NewReader(bytes.NewReader([]byte{0x40, 0xff, 0xff, 0xff, 0x7f, 0x03, 0x00, 0x01, 0x00}))}
	if _, _, _, err := huge.next(); !errors.Is(err, errMQTTPacket) {
		t.Errorf("256 MiB packet: %v, want %v", err, errMQTTPacket)
	}
	for name, body := range map[string][]byte{
		"no topic length": {0x00},
		"topic too long":  {0x00, 0x09, 'a'},
		"no packet id":    {0x00, 0x01, 'a', 0x00},
	} {
		if _, err := mqttPublishPayload(2, body); err == nil {
			t.Errorf("%s: payload read", name)
		}
	}
}

// FuzzBenchMQTTReader: reading packets never panics, and a publish's
// payload is a suffix of its body.
func FuzzBenchMQTTReader(f *testing.F) {
	f.Add(appendMQTTPublish(nil, "devices/b-0/telemetry", 1, 7, []byte(`{"sent_us":1}`)))
	f.Add([]byte{0x40, 0x02, 0x00, 0x01, 0x90, 0x03, 0x00, 0x01, 0x00})
	f.Add([]byte{0x32, 0x80, 0x80, 0x80, 0x80, 0x01})
	f.Fuzz(func(t *testing.T, stream []byte) {
		r := mqttReader{r: bufio.NewReader(bytes.NewReader(stream))}
		for {
			typ, flags, body, err := r.next()
			if err != nil {
				return
			}
			if typ != mqttPublish {
				continue
			}
			if p, err := mqttPublishPayload(flags, body); err == nil && !bytes.HasSuffix(body, p) {
				t.Fatalf("payload %q not in body %q", p, body)
			}
		}
	})
}

// FuzzSentMicros: a send time found is the digits after its key.
func FuzzSentMicros(f *testing.F) {
	f.Add([]byte(`{"seq":3,"sent_us":1764064800123456}`))
	f.Add([]byte(`{"metric":"sent_us","value":17}`))
	f.Add([]byte(`{"sent_us":99999999999999999999}`))
	f.Fuzz(func(t *testing.T, msg []byte) {
		v, ok := sentMicros(msg)
		if ok && (v < 0 || !bytes.Contains(msg, []byte(strconv.FormatInt(v, 10)))) {
			t.Fatalf("sentMicros(%q) = %d", msg, v)
		}
	})
}
