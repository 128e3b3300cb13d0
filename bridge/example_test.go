package bridge_test

import (
	"fmt"

	"github.com/telehub/telehub/bridge"
)

func ExampleParseTelemetry() {
	p, err := bridge.ParseTelemetry([]byte(`{"ts":1795600800123,"seq":42,"values":{"temp":21.5,"door":"open"}}`))
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("seq", p.Seq)
	for _, rd := range p.Readings {
		fmt.Println(rd.Metric, bridge.FormatTime(rd.Time))
	}

	_, err = bridge.ParseTelemetry([]byte(`{"temp":{"c":21.5}}`))
	fmt.Println(err)
	// Output:
	// seq 42
	// temp 2026-11-25T10:00:00.123Z
	// door 2026-11-25T10:00:00.123Z
	// value of "temp": nested objects are not allowed
}
