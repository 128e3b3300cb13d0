package bridge

import (
	"testing"
)

var benchPayloads = []struct {
	name    string
	payload string
}{
	{"flat", `{"temp":21.5,"hum":40.25,"door":"open","alarm":false,"ts":1795600800123,"seq":42}`},
	{"wrapped", `{"ts":1795600800123,"seq":42,"values":{"temp":21.5,"hum":40.25,"door":"open","alarm":false}}`},
	{"senml", `[{"bn":"p.","bt":1795600800.123,"bu":"Cel","n":"temp","v":21.5},{"n":"hum","u":"%RH","v":40.25},{"n":"door","vs":"open"},{"n":"alarm","vb":false}]`},
}

func BenchmarkParseTelemetry(b *testing.B) {
	for _, bp := range benchPayloads {
		b.Run(bp.name, func(b *testing.B) {
			payload := []byte(bp.payload)
			b.SetBytes(int64(len(payload)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := ParseTelemetry(payload); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkParseFrame(b *testing.B) {
	frame := []byte(`{"type":"telemetry","seq":42,"ts":1795600800123,"values":{"temp":21.5,"hum":40.25}}`)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseFrame(frame); err != nil {
			b.Fatal(err)
		}
	}
}

// discardStore accepts every write and keeps none.
type discardStore struct{}

func (discardStore) Submit(*Write) error { return nil }

// BenchmarkTelemetryEncode measures the ingest path of one device message:
// parse, build the events (data and state JSON) and submit. Events per
// second is the figure to compare with the ingest target.
func BenchmarkTelemetryEncode(b *testing.B) {
	br, err := New(Config{Store: discardStore{}})
	if err != nil {
		b.Fatal(err)
	}
	in := Input{Device: "pump-7", Transport: TransportMQTT, SourceTopic: "devices/pump-7/telemetry", Received: fixedNow}
	for _, bp := range benchPayloads {
		b.Run(bp.name, func(b *testing.B) {
			payload := []byte(bp.payload)
			b.ReportAllocs()
			events := 0
			for b.Loop() {
				p, err := ParseTelemetry(payload)
				if err != nil {
					b.Fatal(err)
				}
				if err := br.Telemetry(in, p, nil); err != nil {
					b.Fatal(err)
				}
				events += len(p.Readings)
			}
			b.ReportMetric(float64(events)/b.Elapsed().Seconds(), "events/s")
		})
	}
}

func BenchmarkReject(b *testing.B) {
	br, err := New(Config{Store: discardStore{}})
	if err != nil {
		b.Fatal(err)
	}
	in := Input{Device: "pump-7", Transport: TransportMQTT, SourceTopic: "devices/pump-7/telemetry", Received: fixedNow}
	rej := Errorf(`metric "a b": invalid name`)
	b.ReportAllocs()
	for b.Loop() {
		br.Reject(in, rej)
	}
}
