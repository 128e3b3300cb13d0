package storage

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestIDFormatSingleHub(t *testing.T) {
	c := NewIDCodec("a1b2c3")
	// A single hub's ids are unchanged byte for byte, whatever time is
	// given.
	for _, got := range []string{c.Format(1234), c.FormatAt(1234, t0), string(c.AppendFormatAt(nil, 1234, t0))} {
		if got != "a1b2c3-00000000000004d2" {
			t.Fatalf("id = %q, want a1b2c3-00000000000004d2", got)
		}
	}
	if c.Timed() || c.Len() != len("a1b2c3-00000000000004d2") {
		t.Fatalf("Timed %v, Len %d", c.Timed(), c.Len())
	}
}

func TestIDFormatCluster(t *testing.T) {
	c := NewIDCodec("a1b2c3").InCluster(10 * time.Second)
	at := time.UnixMilli(0x193a1b2c3d4)
	tests := []struct {
		name string
		t    time.Time
		want string
	}{
		{"the event's time", at, "a1b2c3-00000000000004d2-0193a1b2c3d4"},
		{"before 1970", time.UnixMilli(-5), "a1b2c3-00000000000004d2-000000000000"},
		{"past the widest time", time.UnixMilli(maxIDMs + 1), "a1b2c3-00000000000004d2-ffffffffffff"},
	}
	for _, tt := range tests {
		got := c.FormatAt(1234, tt.t)
		if got != tt.want || len(got) != c.Len() {
			t.Errorf("%s: FormatAt = %q (Len %d), want %q", tt.name, got, c.Len(), tt.want)
		}
	}
	if c.Format(1234) != "a1b2c3-00000000000004d2" {
		t.Fatalf("Format = %q, want the id without a time", c.Format(1234))
	}
}

// Ids of one hub increase as strings in commit order, in either mode and
// across a change of mode (a hub that joins a cluster keeps its log).
func TestIDsIncreaseAsStrings(t *testing.T) {
	single := NewIDCodec("a1b2c3")
	cluster := single.InCluster(time.Second)
	ids := []string{
		single.FormatAt(9, t0),
		single.FormatAt(10, t0),
		cluster.FormatAt(11, t0.Add(-time.Hour)), // the clock stepped back
		cluster.FormatAt(12, t0),
		cluster.FormatAt(0x100, t0.Add(-time.Minute)),
		single.FormatAt(0x101, t0),
	}
	for i := 1; i < len(ids); i++ {
		if ids[i-1] >= ids[i] {
			t.Fatalf("%q is not below %q", ids[i-1], ids[i])
		}
	}
}

func TestIDParse(t *testing.T) {
	own := NewIDCodec("a1b2c3")
	tests := []struct {
		name    string
		id      string
		want    uint64
		wantErr error
	}{
		{"single-hub id", "a1b2c3-00000000000004d2", 1234, nil},
		{"timed id of this store", "a1b2c3-00000000000004d2-0193a1b2c3d4", 1234, nil},
		{"another store", "ffff00-00000000000004d2", 0, ErrForeignID},
		{"another store, timed", "ffff00-00000000000004d2-0193a1b2c3d4", 0, ErrForeignID},
		{"empty", "", 0, ErrBadID},
		{"no dash", "a1b2c3", 0, ErrBadID},
		{"no identity", "-00000000000004d2", 0, ErrBadID},
		{"short seq", "a1b2c3-4d2", 0, ErrBadID},
		{"long seq", "a1b2c3-000000000000004d2", 0, ErrBadID},
		{"seq not hex", "a1b2c3-00000000000004g2", 0, ErrBadID},
		{"signed seq", "a1b2c3-+0000000000004d2", 0, ErrBadID},
		{"empty time", "a1b2c3-00000000000004d2-", 0, ErrBadID},
		{"short time", "a1b2c3-00000000000004d2-193a1b2c3d4", 0, ErrBadID},
		{"time not hex", "a1b2c3-00000000000004d2-0193a1b2c3dz", 0, ErrBadID},
		{"three parts after the identity", "a1b2c3-00000000000004d2-0193a1b2c3d4-00", 0, ErrBadID},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := own.Parse(tt.id)
			if !errors.Is(err, tt.wantErr) || got != tt.want {
				t.Fatalf("Parse(%q) = %d, %v; want %d, %v", tt.id, got, err, tt.want, tt.wantErr)
			}
			if err != nil && !strings.Contains(err.Error(), tt.id) {
				t.Fatalf("error %q does not quote the id", err)
			}
		})
	}
}

func TestParseID(t *testing.T) {
	p, err := ParseID("ffff00-00000000000004d2-0193a1b2c3d4")
	want := ParsedID{Identity: "ffff00", Seq: 1234, Time: time.UnixMilli(0x193a1b2c3d4).UTC()}
	if err != nil || p != want {
		t.Fatalf("ParseID = %+v, %v; want %+v", p, err, want)
	}
	p, err = ParseID("ffff00-00000000000004d2")
	if err != nil || !p.Time.IsZero() || p.Seq != 1234 {
		t.Fatalf("ParseID of an id without time = %+v, %v", p, err)
	}
}

func TestPeerSince(t *testing.T) {
	single := NewIDCodec("a1b2c3")
	cluster := single.InCluster(10 * time.Second)
	peer := NewIDCodec("ffff00").InCluster(time.Second)
	at := t0.Add(time.Hour)
	tests := []struct {
		name  string
		codec IDCodec
		id    string
		want  time.Time
		ok    bool
	}{
		{"a peer's timed id", cluster, peer.FormatAt(7, at), at.Add(-10 * time.Second), true},
		{"a single hub's id: no time", cluster, NewIDCodec("ffff00").FormatAt(7, at), time.Time{}, false},
		{"this store's own timed id", cluster, cluster.FormatAt(7, at), time.Time{}, false},
		{"malformed", cluster, "ffff00-7-0193a1b2c3d4", time.Time{}, false},
		{"not in a cluster", single, peer.FormatAt(7, at), time.Time{}, false},
	}
	for _, tt := range tests {
		got, ok := tt.codec.PeerSince(tt.id)
		if ok != tt.ok || !got.Equal(tt.want) {
			t.Errorf("%s: PeerSince(%q) = %v, %v; want %v, %v", tt.name, tt.id, got, ok, tt.want, tt.ok)
		}
	}
	if got, _ := single.InCluster(-time.Second).PeerSince(peer.FormatAt(7, at)); !got.Equal(at) {
		t.Errorf("a negative margin: PeerSince = %v, want %v", got, at)
	}
}

// FuzzParseID: ParseID never panics, and what it accepts formats back to an
// id that parses to the same parts. Seeds: testdata/fuzz/FuzzParseID.
func FuzzParseID(f *testing.F) {
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParseID(s)
		if err != nil {
			if !errors.Is(err, ErrBadID) {
				t.Fatalf("ParseID(%q): %v does not wrap ErrBadID", s, err)
			}
			return
		}
		if p.Identity == "" || strings.Contains(p.Identity, "-") {
			t.Fatalf("ParseID(%q): identity %q", s, p.Identity)
		}
		c := NewIDCodec(p.Identity)
		if !p.Time.IsZero() {
			c = c.InCluster(0)
		}
		again, err := ParseID(c.FormatAt(p.Seq, p.Time))
		if err != nil || again != p {
			t.Fatalf("ParseID(%q) = %+v; formatted and parsed again: %+v, %v", s, p, again, err)
		}
		if seq, err := c.Parse(s); err != nil || seq != p.Seq {
			t.Fatalf("Parse(%q) by its own store = %d, %v; want %d", s, seq, err, p.Seq)
		}
	})
}
