package firmwaresim

import (
	"flag"
	"fmt"
	"strconv"
	"time"
)

// durationFlag defines a duration flag whose error says that a duration
// needs a unit.
func durationFlag(fs *flag.FlagSet, p *time.Duration, name string, def time.Duration, usage string) {
	*p = def
	fs.Var((*durationValue)(p), name, usage)
}

// durationValue is a time.Duration flag with a helpful error.
type durationValue time.Duration

func (d *durationValue) String() string { return time.Duration(*d).String() }

func (d *durationValue) Set(s string) error {
	v, err := time.ParseDuration(s)
	if err == nil {
		*d = durationValue(v)
		return nil
	}
	if _, numErr := strconv.ParseFloat(s, 64); numErr == nil {
		return fmt.Errorf("%q needs a unit, like %ss, %sms or %sm", s, s, s, s)
	}
	return fmt.Errorf("%q is not a duration like 10s, 500ms or 2m", s)
}

// positiveInt parses a whole number of at least 1 into p.
func positiveInt(p *int, name string) func(string) error {
	return func(s string) error {
		v, err := strconv.Atoi(s)
		if err != nil {
			return fmt.Errorf("%q is not a whole number", s)
		}
		if v < 1 {
			return fmt.Errorf("%s must be at least 1, got %d", name, v)
		}
		*p = v
		return nil
	}
}

// positiveFloat parses a number above 0 into p.
func positiveFloat(p *float64, name string) func(string) error {
	return func(s string) error {
		v, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return fmt.Errorf("%q is not a number", s)
		}
		if !(v > 0) {
			return fmt.Errorf("%s must be more than 0, got %s", name, s)
		}
		*p = v
		return nil
	}
}
