package topic

import "testing"

func BenchmarkMatch(b *testing.B) {
	tests := []struct {
		filter string
		want   bool
	}{
		{"#", true}, {"telemetry/+/temp", true}, {"telemetry/pump-7/#", true},
		{"telemetry/pump-7/temp", true}, {"presence/#", false}, {"telemetry/+/hum", false},
	}
	const topic = "telemetry/pump-7/temp"
	for _, tt := range tests {
		f, err := ParseFilter(tt.filter)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(tt.filter, func(b *testing.B) {
			for b.Loop() {
				if f.Match(topic) != tt.want {
					b.Fatal("wrong match")
				}
			}
		})
	}
}
