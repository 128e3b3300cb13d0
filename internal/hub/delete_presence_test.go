package hub

import (
	"fmt"
	"net/http"
	"testing"
)

// presenceEvents returns the stored presence events of device as
// "online|offline session reason".
func presenceEvents(t *testing.T, h *Hub, device string) []string {
	t.Helper()
	var out []string
	for _, e := range events(t, h, "presence/"+device) {
		state := "offline"
		if e.Data["online"] == true {
			state = "online"
		}
		out = append(out, fmt.Sprintf("%s %v %v", state, e.Data["session"], e.Data["reason"]))
	}
	return out
}

// deleteConnected deletes device, which is connected over d, and waits
// for the hub to close d and commit what the delete submitted (the end of
// the connection is the delete's own offline event, submitted before the
// DELETE answers).
func deleteConnected(t *testing.T, h *Hub, device string, d *wsDevice) {
	t.Helper()
	committed(t, h) // its connect event included
	if status, body := call(t, h, "DELETE", "/v1/devices/"+device, "", ""); status != http.StatusNoContent {
		t.Fatalf("DELETE: %d %s", status, body)
	}
	d.closeError(t)
	committed(t, h)
}

// Deleting an online device publishes its offline presence event (reason
// disconnect) without recording the device again.
func TestDeletePublishesOffline(t *testing.T) {
	h := startHub(t, testConfig(t))
	deleteConnected(t, h, "dev-o", dialDevice(t, h, "dev-o"))
	want := []string{"online 1 connect", "offline 1 disconnect"}
	if got := presenceEvents(t, h, "dev-o"); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("presence events %q, want %q", got, want)
	}
	if status := deviceStatus(t, h, "dev-o"); status != http.StatusNotFound {
		t.Fatalf("GET after DELETE: %d, want 404: the offline event must not record the device again", status)
	}
	var list []struct{ ID string }
	if status := getJSON(t, h, "/v1/devices?prefix=dev-", &list); status != http.StatusOK || len(list) != 0 {
		t.Fatalf("device list after DELETE: %d %+v, want none", status, list)
	}
}

// A deleted device that comes back goes on from its last session, after a
// restart of the hub too, so watchers can still order its presence events
// by session.
func TestDeleteKeepsSessions(t *testing.T) {
	cfg := testConfig(t)
	h := startHub(t, cfg)
	d := dialDevice(t, h, "dev-s")
	dialDevice(t, h, "dev-s") // replaces d: session 2
	d.closeError(t)
	deleteConnected(t, h, "dev-s", dialDevice(t, h, "dev-s")) // session 3

	stopHub(t, h) // the session survives a restart while the device is deleted
	h = startHub(t, cfg)
	deleteConnected(t, h, "dev-s", dialDevice(t, h, "dev-s")) // session 4
	dialDevice(t, h, "dev-s")                                 // 5: deleted and back without a restart
	committed(t, h)
	var sessions []string
	for _, e := range presenceEvents(t, h, "dev-s") {
		if e[:6] == "online" {
			sessions = append(sessions, e)
		}
	}
	want := []string{"online 1 connect", "online 2 connect", "online 3 connect", "online 4 connect", "online 5 connect"}
	if fmt.Sprint(sessions) != fmt.Sprint(want) {
		t.Fatalf("online events %q, want %q", sessions, want)
	}
	var dev struct {
		Online bool `json:"online"`
	}
	if status := getJSON(t, h, "/v1/devices/dev-s", &dev); status != http.StatusOK || !dev.Online {
		t.Fatalf("device anew: %d %+v", status, dev)
	}
}
