package firmwaresim

import (
	"math"
	"math/rand/v2"
	"time"
)

// Fault is a sensor fault injected into a reading.
type Fault uint8

// The sensor faults a model injects now and then.
const (
	FaultNone  Fault = iota
	FaultStuck       // the temperature sensor repeats its last value
	FaultSpike       // one temperature value far off the curve
)

// Door states reported by the "door" metric.
const (
	DoorOpen   = "open"
	DoorClosed = "closed"
)

// The metrics of every reading, in the order payloads carry them.
const (
	MetricTemp   = "temp"   // °C, number
	MetricHum    = "hum"    // %RH, number in [0, 100]
	MetricEnergy = "energy" // kWh, number that never decreases
	MetricDoor   = "door"   // DoorOpen or DoorClosed, string
	MetricPump   = "pump"   // pump running, bool
)

// metricNames lists the metrics of a reading; a reading's events are
// matched by their index in it.
var metricNames = [...]string{MetricTemp, MetricHum, MetricEnergy, MetricDoor, MetricPump}

// allMetrics is the bit mask of a reading whose every metric was seen.
const allMetrics = 1<<len(metricNames) - 1

// metricIndex returns the index of name in metricNames, or -1.
func metricIndex(name string) int {
	for i, m := range metricNames {
		if m == name {
			return i
		}
	}
	return -1
}

// Reading is one sample of a device's sensors. It holds no pointers to
// per-reading memory: Door is one of two constant strings.
type Reading struct {
	Temp   float64
	Hum    float64
	Energy float64
	Door   string
	Pump   bool
	Fault  Fault
}

// Tunables of the sensor models.
const (
	noiseTemp   = 0.15  // °C, standard deviation of the temperature noise
	driftStep   = 0.02  // °C per reading of the slow random walk
	driftMax    = 2.0   // °C, bound of the random walk
	humPerDeg   = 2.5   // %RH lost per °C above the device's baseline
	noiseHum    = 0.8   // %RH, standard deviation of the humidity noise
	pDoorFlip   = 0.02  // per reading
	pPumpFlip   = 0.01  // per reading
	pStuckStart = 0.002 // per reading
	pSpike      = 0.001 // per reading
)

// Model is the sensor model of one device: a temperature with a daily cycle
// (warmest at 15:00 UTC), noise and a slow drift; a humidity that falls as
// the temperature rises; an energy counter; a door and a pump that change
// state now and then; and occasional faults. A Model is not safe for
// concurrent use: one scheduler goroutine owns each device.
type Model struct {
	rng *rand.Rand

	tempBase, tempAmp float64
	humBase           float64
	powerKW           float64

	drift     float64
	energy    float64
	lastT     time.Time
	doorOpen  bool
	pumpOn    bool
	stuckLeft int
	lastTemp  float64
}

// NewModel returns the model of device index in a run seeded with seed.
// Two models made with the same seed and index produce the same readings
// for the same times.
func NewModel(seed uint64, index int) *Model {
	rng := rand.New(rand.NewPCG(seed, uint64(index)))
	return &Model{
		rng:      rng,
		tempBase: 18 + 6*rng.Float64(),
		tempAmp:  2 + 4*rng.Float64(),
		humBase:  35 + 30*rng.Float64(),
		powerKW:  0.2 + 2*rng.Float64(),
		energy:   math.Round(1000*rng.Float64()*100) / 100,
		doorOpen: rng.IntN(4) == 0,
		pumpOn:   rng.IntN(2) == 0,
	}
}

// Next returns the reading taken at time t.
func (m *Model) Next(t time.Time) Reading {
	clean := m.temperature(t)
	temp, fault := m.applyFaults(clean)
	r := Reading{
		Temp:   round(temp, 100),
		Hum:    round(m.humidity(clean), 10),
		Energy: m.meter(t),
		Door:   DoorClosed,
		Pump:   m.flip(&m.pumpOn, pPumpFlip),
		Fault:  fault,
	}
	if m.flip(&m.doorOpen, pDoorFlip) {
		r.Door = DoorOpen
	}
	m.lastTemp = r.Temp
	return r
}

// temperature is the fault-free temperature at t.
func (m *Model) temperature(t time.Time) float64 {
	m.drift += driftStep * m.rng.NormFloat64()
	m.drift = max(-driftMax, min(driftMax, m.drift))
	hours := float64(t.UTC().Hour()) + float64(t.UTC().Minute())/60
	cycle := math.Sin(2 * math.Pi * (hours - 9) / 24)
	return m.tempBase + m.tempAmp*cycle + m.drift + noiseTemp*m.rng.NormFloat64()
}

// applyFaults returns the temperature the sensor reports: stuck at its
// last value for a while, spiked once, or the true one.
func (m *Model) applyFaults(temp float64) (float64, Fault) {
	if m.stuckLeft > 0 {
		m.stuckLeft--
		return m.lastTemp, FaultStuck
	}
	switch p := m.rng.Float64(); {
	case p < pStuckStart && m.lastT != (time.Time{}):
		m.stuckLeft = 4 + m.rng.IntN(16)
		return m.lastTemp, FaultStuck
	case p < pStuckStart+pSpike:
		spike := 15 + 15*m.rng.Float64()
		if m.rng.IntN(2) == 0 {
			spike = -spike
		}
		return temp + spike, FaultSpike
	}
	return temp, FaultNone
}

// humidity is anti-correlated with the temperature and kept in [0, 100].
func (m *Model) humidity(temp float64) float64 {
	h := m.humBase - humPerDeg*(temp-m.tempBase) + noiseHum*m.rng.NormFloat64()
	return max(0, min(100, h))
}

// meter advances the energy counter by the power drawn since the last
// reading; it never goes back, even when the clock does.
func (m *Model) meter(t time.Time) float64 {
	if m.lastT != (time.Time{}) && t.After(m.lastT) {
		hours := t.Sub(m.lastT).Hours()
		m.energy += hours * m.powerKW * (0.5 + m.rng.Float64())
	}
	if m.lastT.Before(t) {
		m.lastT = t
	}
	return math.Floor(m.energy*10000) / 10000
}

// flip changes *state with probability p and returns the new state.
func (m *Model) flip(state *bool, p float64) bool {
	if m.rng.Float64() < p {
		*state = !*state
	}
	return *state
}

func round(x, scale float64) float64 { return math.Round(x*scale) / scale }
