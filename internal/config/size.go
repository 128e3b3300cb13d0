package config

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// sizeUnits are the units ParseSize takes, longest first so that "KiB" is
// not read as "B".
var sizeUnits = []struct {
	name  string
	bytes int64
}{
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30},
	{"KB", 1000}, {"MB", 1000 * 1000}, {"GB", 1000 * 1000 * 1000},
	{"B", 1},
}

// ParseSize parses a number of bytes: a whole number, optionally followed
// by a unit (B, KiB, MiB, GiB, or the decimal KB, MB, GB; case does not
// matter), with or without a space: 65536, 64KiB, 64 KiB, 1MiB.
func ParseSize(s string) (int, error) {
	num, unit := splitUnit(strings.TrimSpace(s))
	mult := int64(1)
	if unit != "" {
		mult = 0
		for _, u := range sizeUnits {
			if strings.EqualFold(unit, u.name) {
				mult = u.bytes
				break
			}
		}
	}
	n, err := strconv.ParseInt(strings.ReplaceAll(num, "_", ""), 10, 64)
	if mult == 0 || err != nil || n < 0 || num == "" || num[0] == '+' {
		return 0, fmt.Errorf("%q is not a size like 65536, 64KiB or 1MiB", s)
	}
	if n > int64(math.MaxInt)/mult {
		return 0, fmt.Errorf("%q is too large", s)
	}
	return int(n * mult), nil
}

// splitUnit splits "64 KiB" into "64" and "KiB".
func splitUnit(s string) (num, unit string) {
	i := strings.IndexFunc(s, func(r rune) bool { return (r < '0' || r > '9') && r != '_' && r != '-' && r != '+' })
	if i < 0 {
		return s, ""
	}
	return s[:i], strings.TrimSpace(s[i:])
}

// FormatSize writes n bytes the way --help shows sizes: in MiB or KiB when
// it is a whole number of them, else in bytes.
func FormatSize(n int) string {
	switch {
	case n != 0 && n%(1<<20) == 0:
		return strconv.Itoa(n>>20) + "MiB"
	case n != 0 && n%(1<<10) == 0:
		return strconv.Itoa(n>>10) + "KiB"
	}
	return strconv.Itoa(n)
}
