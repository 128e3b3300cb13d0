package topic_test

import (
	"fmt"

	"github.com/telehub/telehub/internal/topic"
)

func ExampleFilter_Match() {
	f, err := topic.ParseFilter("telemetry/+/temp")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(f.Match("telemetry/pump-7/temp"))
	fmt.Println(f.Match("telemetry/pump-7/hum"))

	all, _ := topic.ParseFilter("telemetry/pump-7/#")
	fmt.Println(all.Match("telemetry/pump-7"))

	_, err = topic.ParseFilter("telemetry/#/temp")
	fmt.Println(err)
	// Output:
	// true
	// false
	// true
	// filter "telemetry/#/temp": '#' must be the last level
}
