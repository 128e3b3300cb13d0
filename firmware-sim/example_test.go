package firmwaresim_test

import (
	"flag"
	"fmt"
	"time"

	firmwaresim "github.com/telehub/telehub/firmware-sim"
)

func ExampleBackoff() {
	b := firmwaresim.Backoff{Min: 100 * time.Millisecond, Max: 5 * time.Second}
	for attempt := range 8 {
		// a draw of 0.5 lands halfway between 0 and the attempt's ceiling
		fmt.Println(attempt, b.Ceiling(attempt), b.Delay(attempt, 0.5))
	}
	// Output:
	// 0 100ms 50ms
	// 1 200ms 100ms
	// 2 400ms 200ms
	// 3 800ms 400ms
	// 4 1.6s 800ms
	// 5 3.2s 1.6s
	// 6 5s 2.5s
	// 7 5s 2.5s
}

func ExampleHistogram() {
	var h firmwaresim.Histogram
	for i := 1; i <= 100; i++ {
		h.Record(time.Duration(i) * time.Millisecond)
	}
	fmt.Println(h.Count(), h.Quantile(0.5) >= 50*time.Millisecond, h.Max())
	// Output: 100 true 100ms
}

func ExampleNewModel() {
	a, b := firmwaresim.NewModel(42, 7), firmwaresim.NewModel(42, 7)
	t := time.Date(2026, 11, 25, 15, 0, 0, 0, time.UTC)
	ra, rb := a.Next(t), b.Next(t)
	fmt.Println(ra == rb, ra.Hum >= 0 && ra.Hum <= 100)
	// Output: true true
}

func ExampleConfig_RegisterFlags() {
	var cfg firmwaresim.Config
	fs := flag.NewFlagSet("firmware-sim", flag.ContinueOnError)
	cfg.RegisterFlags(fs)
	_ = fs.Parse([]string{"--transport", "mqtt", "--format", "senml", "--devices", "50", "--verify"})
	fmt.Println(cfg.Transport, cfg.Format, cfg.Devices, cfg.Verify, cfg.QoS0)
	// Output: mqtt senml 50 true false
}
