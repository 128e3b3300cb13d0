package auth

import (
	"errors"
	"strings"
	"testing"

	"github.com/telehub/telehub/internal/topic"
)

// FuzzParseSecret checks that a configuration token either parses to a
// "sha256:" hash that parses again to itself, or fails with ErrBadToken
// with a message that does not reveal a plain token.
func FuzzParseSecret(f *testing.F) {
	for _, s := range []string{"", "short", "correct-horse-battery-staple", "sha256:", "sha256:" + strings.Repeat("ab", 32),
		"sha256:" + strings.Repeat("AB", 32), "sha256:" + strings.Repeat("g", 64), "spaces are not allowed here"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		h, err := ParseSecret(s)
		if err != nil {
			if !errors.Is(err, ErrBadToken) {
				t.Fatalf("error %v does not wrap ErrBadToken", err)
			}
			if !strings.HasPrefix(s, HashPrefix) {
				// The message may depend on the token's length and on where
				// its bad bytes are, never on its printable content: the
				// same token with every printable byte masked fails alike.
				masked := []byte(s)
				for i, c := range masked {
					if c > ' ' && c <= '~' {
						masked[i] = 'x'
					}
				}
				if _, err2 := ParseSecret(string(masked)); err2 == nil || err2.Error() != err.Error() {
					t.Fatalf("error %q depends on the token's content (masked: %v)", err, err2)
				}
			}
			return
		}
		if !strings.HasPrefix(h, HashPrefix) || len(h) != len(HashPrefix)+64 {
			t.Fatalf("ParseSecret = %q", h)
		}
		if again, err := ParseSecret(h); err != nil || again != h {
			t.Fatalf("hash %q parses to %q, %v", h, again, err)
		}
	})
}

// FuzzParseFile checks that a credentials file either fails with
// ErrBadFile or holds valid credentials that encode and parse back the
// same.
func FuzzParseFile(f *testing.F) {
	h := hashToken(deviceToken).String()
	for _, s := range []string{
		`{"version":1,"devices":[],"watchers":[]}`,
		`{"version":1,"devices":[{"device":"d1","hash":"` + h + `","created":"2026-11-25T10:00:00Z"}],"watchers":[{"name":"ops","hash":"` + h + `","topics":["telemetry/#"],"created":"2026-11-25T10:00:00Z"}]}`,
		`{"version":1,"watchers":[{"name":"ops","hash":"` + h + `","topics":["commands/#"],"commands":["pump-7","+"]}]}`,
		`{"version":2}`, `{"version":1,"devices":[{"device":"a/b","hash":"x"}]}`, `[]`, `null`, ``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		devices, watchers, err := parseFile(data)
		if err != nil {
			if !errors.Is(err, ErrBadFile) {
				t.Fatalf("error %v does not wrap ErrBadFile", err)
			}
			return
		}
		s := &snapshot{devices: devices, watchers: map[string]*watcher{}, byHash: map[digest]*watcher{}}
		for _, w := range watchers {
			if topic.ValidDeviceID(w.name) != nil || len(w.scopes) == 0 {
				t.Fatalf("accepted watcher %q with scopes %v", w.name, w.scopes)
			}
			_ = s.addWatcher(w) // duplicate tokens are New's to refuse
		}
		out, err := encodeFile(s)
		if err != nil {
			t.Fatal(err)
		}
		devices2, watchers2, err := parseFile(out)
		if err != nil {
			t.Fatalf("encoded file does not parse: %v\n%s", err, out)
		}
		if len(devices2) != len(devices) || len(watchers2) != len(s.watchers) {
			t.Fatalf("round trip lost credentials:\n%s", out)
		}
	})
}

// FuzzCovers checks Covers against Match: when a scope covers a filter,
// every topic built from the filter (wildcards filled in) matches the
// scope; and every filter covers itself.
func FuzzCovers(f *testing.F) {
	seeds := [][2]string{{"#", "telemetry/+/temp"}, {"telemetry/#", "telemetry"}, {"a/+/#", "a/#"},
		{"+/#", "#"}, {"#", "$SYS/#"}, {"a//b", "a/+/b"}, {"+/+", "/"}}
	for _, s := range seeds {
		f.Add(s[0], s[1], "x")
	}
	f.Fuzz(func(t *testing.T, scopeStr, filterStr, fill string) {
		scope, err1 := topic.ParseFilter(scopeStr)
		filter, err2 := topic.ParseFilter(filterStr)
		if err1 != nil || err2 != nil {
			return
		}
		if !Covers(filter, filter) || !Covers(scope, scope) {
			t.Fatalf("%q or %q does not cover itself", scopeStr, filterStr)
		}
		if !Covers(scope, filter) {
			return
		}
		fill = strings.NewReplacer("/", "", "+", "", "#", "").Replace(fill)
		for _, topic := range instances(filterStr, fill) {
			if filter.Match(topic) && !scope.Match(topic) {
				t.Fatalf("Covers(%q, %q), but topic %q matches only the filter", scopeStr, filterStr, topic)
			}
		}
	})
}

// instances returns topics matched by filter: '+' levels filled with fill,
// '#' with zero, one and two levels of fill.
func instances(filter, fill string) []string {
	levels := strings.Split(filter, "/")
	for i, l := range levels {
		if l == topic.SingleLevel {
			levels[i] = fill
		}
	}
	if levels[len(levels)-1] != topic.MultiLevel {
		return []string{strings.Join(levels, "/")}
	}
	base := levels[:len(levels)-1]
	var out []string
	if len(base) > 0 {
		out = append(out, strings.Join(base, "/"))
	}
	for _, tail := range []string{fill, fill + "/" + fill} {
		out = append(out, strings.Join(append(append([]string(nil), base...), tail), "/"))
	}
	return out
}
