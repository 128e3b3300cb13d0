package jsonx

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"
)

// stringSeeds are shared by the table test and the fuzz target; the files
// under testdata/fuzz add more.
var stringSeeds = []string{
	"", "plain", `quote " and \ backslash`, "new\nline\ttab\rcr\bbs\fff",
	"\x00\x01\x1f\x7f", "<script>&amp;</script>", "é€😀", "\u2028\u2029",
	"bad \xff utf8 \xc3", "\xed\xa0\x80", "tail\xe2\x82", "\xf4\x90\x80\x80",
}

func TestAppendStringMatchesEncodingJSON(t *testing.T) {
	for _, s := range stringSeeds {
		want, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		if got := AppendString(nil, s); string(got) != string(want) {
			t.Errorf("AppendString(%q) = %s, want %s", s, got, want)
		}
		if got := AppendString(nil, []byte(s)); string(got) != string(want) {
			t.Errorf("AppendString([]byte %q) = %s, want %s", s, got, want)
		}
	}
}

func TestAppendStringAppends(t *testing.T) {
	if got := string(AppendString([]byte(`{"a":`), "x")); got != `{"a":"x"` {
		t.Errorf("got %s", got)
	}
}

// FuzzAppendString checks that any input, valid UTF-8 or not, becomes
// valid JSON that decodes back to the input with each invalid byte
// replaced by U+FFFD, and that the bytes are encoding/json's.
func FuzzAppendString(f *testing.F) {
	for _, s := range stringSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := AppendString(nil, s)
		if !json.Valid(got) {
			t.Fatalf("AppendString(%q) = %s: invalid JSON", s, got)
		}
		var back string
		if err := json.Unmarshal(got, &back); err != nil {
			t.Fatalf("decode %s: %v", got, err)
		}
		if want := string([]rune(s)); back != want {
			t.Fatalf("AppendString(%q) decodes to %q, want %q", s, back, want)
		}
		if want, _ := json.Marshal(s); string(got) != string(want) {
			t.Fatalf("AppendString(%q) = %s, encoding/json %s", s, got, want)
		}
		for _, c := range got {
			if c < 0x20 {
				t.Fatalf("AppendString(%q) = %q holds a raw control character", s, got)
			}
		}
	})
}

func TestTruncateKeepsUTF8(t *testing.T) {
	s := strings.Repeat("€", 100) // 3 bytes each
	for n := 1; n < 40; n++ {
		got := Truncate(s, n)
		if len(got) > n || !utf8.ValidString(got) || len(got) < n-2 {
			t.Errorf("Truncate(_, %d) = %d bytes, valid=%v", n, len(got), utf8.ValidString(got))
		}
	}
	if got := Truncate("abc", 10); got != "abc" {
		t.Errorf("Truncate of a short string = %q", got)
	}
	if got := Truncate(strings.Repeat("\xff", 10), 4); got != "\xff\xff\xff\xff" {
		t.Errorf("Truncate of invalid UTF-8 = %q", got)
	}
}

func BenchmarkAppendString(b *testing.B) {
	s := "telemetry/pump-7/temp and a message with <markup> & \"quotes\" é€"
	buf := make([]byte, 0, 256)
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendString(buf[:0], s)
	}
}
