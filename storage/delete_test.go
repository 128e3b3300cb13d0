package storage

import (
	"errors"
	"testing"

	"github.com/telehub/telehub/bridge"
)

func TestDeleteDevice(t *testing.T) {
	s := openStore(t, testConfig(t))
	submitSync(t, s, withSeq(reading("d1", t0, 1, "temp", "hum"), 7))
	submitSync(t, s, withSeq(reading("d2", t0, 2, "temp"), 3))
	release := hold(t, s)
	// Queued behind the held write: committed before the delete.
	pending := submitAsync(t, s, withSeq(reading("d1", t0, 3, "temp"), 8))
	deleted := make(chan error, 1)
	go func() { deleted <- s.DeleteDevice("d1") }()
	release()
	if r := wait(t, pending); r.Err != nil || r.Duplicate {
		t.Fatalf("write queued before the delete: %+v", r)
	}
	if err := <-deleted; err != nil {
		t.Fatalf("DeleteDevice: %v", err)
	}
	if _, _, err := s.Device("d1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Device after the delete: %v, want ErrNotFound", err)
	}
	if devs, err := s.Devices(); err != nil || len(devs) != 2 || devs[0].ID != "d2" || devs[1].ID != "hold" {
		t.Fatalf("Devices: %+v %v", devs, err)
	}
	if n := len(scanAll(t, s)); n != 5 {
		t.Fatalf("%d events retained, want all 5: events stay until retention", n)
	}
	// The seq state went with the record: seq 7 is stored again, as new.
	if r := submitSync(t, s, withSeq(reading("d1", t0, 4, "door"), 7)); r.Duplicate || r.FirstID == 0 {
		t.Fatalf("write after the delete: %+v, want stored", r)
	}
	d, states, err := s.Device("d1")
	if err != nil || len(states) != 1 || states[0].Metric != "door" || len(d.Metrics) != 1 {
		t.Fatalf("device anew: %+v %+v %v", d, states, err)
	}
	if err := s.DeleteDevice("nope"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown device: %v, want ErrNotFound", err)
	}
}

// A delete survives a restart, and a closed store refuses deletes.
func TestDeleteDeviceDurable(t *testing.T) {
	cfg := testConfig(t)
	s := openStore(t, cfg)
	submitSync(t, s, reading("d1", t0, 1, "temp"))
	if err := s.DeleteDevice("d1"); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteDevice("d1"); !errors.Is(err, ErrClosed) {
		t.Fatalf("DeleteDevice on a closed store: %v, want ErrClosed", err)
	}
	s = openStore(t, cfg)
	if _, _, err := s.Device("d1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("after a restart: %v, want ErrNotFound", err)
	}
}

// online returns a presence write of device at session.
func online(device string, session uint64) *bridge.Write {
	return &bridge.Write{Device: device, Transport: bridge.TransportWS, Seen: t0,
		Presence: &bridge.Presence{Online: true, Transport: bridge.TransportWS, Session: session, Reason: bridge.ReasonConnect}}
}

// A deleted device's last session is kept, across a restart, until the
// device is written again: its new record starts from it.
func TestDeleteDeviceKeepsSession(t *testing.T) {
	cfg := testConfig(t)
	s := openStore(t, cfg)
	submitSync(t, s, online("d1", 7))
	if _, found, err := s.DeletedSession("d1"); found || err != nil {
		t.Fatalf("DeletedSession of a live device: %v %v", found, err)
	}
	if err := s.DeleteDevice("d1"); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openStore(t, cfg)
	if session, found, err := s.DeletedSession("d1"); session != 7 || !found || err != nil {
		t.Fatalf("DeletedSession after a restart: %d %v %v, want 7", session, found, err)
	}
	if devs, err := s.Devices(); err != nil || len(devs) != 0 {
		t.Fatalf("Devices lists %+v %v, want none", devs, err)
	}
	if _, found, err := s.DeletedSession("never"); found || err != nil {
		t.Fatalf("DeletedSession of an unknown device: %v %v", found, err)
	}

	// A reading creates the record again, with the session, which it then
	// carries.
	submitSync(t, s, reading("d1", t0, 1, "temp"))
	if d, _, err := s.Device("d1"); err != nil || d.Session != 7 || d.Online {
		t.Fatalf("device anew: %+v %v, want offline at session 7", d, err)
	}
	if _, found, err := s.DeletedSession("d1"); found || err != nil {
		t.Fatalf("DeletedSession once written again: %v %v", found, err)
	}
	submitSync(t, s, online("d1", 8))
	if err := s.DeleteDevice("d1"); err != nil {
		t.Fatal(err)
	}
	if session, _, err := s.DeletedSession("d1"); session != 8 || err != nil {
		t.Fatalf("DeletedSession after the second delete: %d %v, want 8", session, err)
	}
}

// A session value that cannot be decoded is an error to read, and the
// device's next write replaces it with a record starting again.
func TestDeletedSessionCorrupt(t *testing.T) {
	cfg := testConfig(t)
	s := openStore(t, cfg)
	submitSync(t, s, online("d1", 3))
	if err := s.DeleteDevice("d1"); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	rawPut(t, cfg.Path, bucketDeleted, []byte("d1"), []byte{0xff})
	s = openStore(t, cfg)
	if _, _, err := s.DeletedSession("d1"); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("DeletedSession of a damaged value: %v, want ErrCorrupt", err)
	}
	if r := submitSync(t, s, reading("d1", t0, 1, "temp")); r.Err != nil {
		t.Fatalf("write over a damaged session: %+v", r)
	}
	if d, _, err := s.Device("d1"); err != nil || d.Session != 0 {
		t.Fatalf("device anew: %+v %v, want session 0", d, err)
	}
	if _, found, err := s.DeletedSession("d1"); found || err != nil {
		t.Fatalf("DeletedSession once written again: %v %v", found, err)
	}
}
