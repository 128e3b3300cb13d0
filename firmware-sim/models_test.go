package firmwaresim

import (
	"testing"
	"time"
)

// readings returns n readings of model (seed, index) taken every step from t0.
func readings(seed uint64, index, n int, t0 time.Time, step time.Duration) []Reading {
	m := NewModel(seed, index)
	out := make([]Reading, n)
	for i := range out {
		out[i] = m.Next(t0.Add(time.Duration(i) * step))
	}
	return out
}

func TestModelDeterministicPerSeed(t *testing.T) {
	t0 := time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name          string
		seedA, seedB  uint64
		indexA, indxB int
		same          bool
	}{
		{"same seed and index", 7, 7, 3, 3, true},
		{"other index", 7, 7, 3, 4, false},
		{"other seed", 7, 8, 3, 3, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := readings(tt.seedA, tt.indexA, 500, t0, time.Minute)
			b := readings(tt.seedB, tt.indxB, 500, t0, time.Minute)
			same := true
			for i := range a {
				if a[i] != b[i] {
					same = false
					break
				}
			}
			if same != tt.same {
				t.Fatalf("same readings = %v, want %v", same, tt.same)
			}
		})
	}
}

func TestModelRanges(t *testing.T) {
	t0 := time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC)
	for index := range 20 {
		rs := readings(42, index, 3000, t0, 30*time.Second) // 25 hours
		last := -1.0
		for i, r := range rs {
			if r.Hum < 0 || r.Hum > 100 {
				t.Fatalf("device %d reading %d: humidity %v out of [0, 100]", index, i, r.Hum)
			}
			if r.Energy < last {
				t.Fatalf("device %d reading %d: energy went back from %v to %v", index, i, last, r.Energy)
			}
			last = r.Energy
			if r.Door != DoorOpen && r.Door != DoorClosed {
				t.Fatalf("door %q", r.Door)
			}
			if r.Fault == FaultNone && (r.Temp < 5 || r.Temp > 35) {
				t.Fatalf("device %d reading %d: fault-free temperature %v implausible", index, i, r.Temp)
			}
		}
	}
}

func TestModelEnergyIgnoresClockGoingBack(t *testing.T) {
	m := NewModel(1, 1)
	t0 := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	a := m.Next(t0)
	b := m.Next(t0.Add(time.Hour))
	c := m.Next(t0) // clock stepped back an hour
	if b.Energy <= a.Energy || c.Energy < b.Energy {
		t.Fatalf("energy %v, %v, %v: want growing, then not below", a.Energy, b.Energy, c.Energy)
	}
}

func TestModelDailyCycleAndAntiCorrelation(t *testing.T) {
	day := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	var warm, cold, humWarm, humCold float64
	const n = 200
	m := NewModel(3, 0)
	for i := range n {
		// alternate 15:00 (warmest) and 03:00 (coldest) on consecutive days
		w := m.Next(day.Add(time.Duration(i)*24*time.Hour + 15*time.Hour))
		c := m.Next(day.Add(time.Duration(i)*24*time.Hour + 27*time.Hour))
		warm, humWarm = warm+w.Temp, humWarm+w.Hum
		cold, humCold = cold+c.Temp, humCold+c.Hum
	}
	if warm/n <= cold/n+1 {
		t.Fatalf("mean temp at 15:00 %.2f not above 03:00 %.2f", warm/n, cold/n)
	}
	if humWarm/n >= humCold/n {
		t.Fatalf("mean humidity at 15:00 %.2f not below 03:00 %.2f", humWarm/n, humCold/n)
	}
}

func TestModelFaultsHappen(t *testing.T) {
	t0 := time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC)
	seen := map[Fault]int{}
	for _, r := range readings(9, 1, 20000, t0, time.Second) {
		seen[r.Fault]++
	}
	if seen[FaultStuck] == 0 || seen[FaultSpike] == 0 {
		t.Fatalf("faults over 20000 readings: %v, want some stuck and some spikes", seen)
	}
	if seen[FaultNone] < 19000 {
		t.Fatalf("faults over 20000 readings: %v, want them occasional", seen)
	}
}

func BenchmarkModelNext(b *testing.B) {
	m := NewModel(1, 1)
	t0 := time.Now()
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		m.Next(t0.Add(time.Duration(i) * time.Second))
	}
}
