package hub

import (
	"fmt"
	"net/http"
	"testing"
	"time"
)

// TestDashboardStartsFromHistory opens the dashboard on a hub that already
// has history: before any new reading arrives, the page lands on the most
// recently active device with its chart filled, and lists the rejected
// payloads and presence changes that came before it was opened. New
// readings then extend the chart exactly, with nothing counted twice
// between history and the live stream. Last, the device that left is
// deleted from the page.
func TestDashboardStartsFromHistory(t *testing.T) {
	h := startHub(t, testConfig(t))
	// A device that came and went: alphabetically first, offline now.
	gone := dialDevice(t, h, "aaa-gone")
	gone.send(t, `{"type":"telemetry","seq":1,"values":{"temp":5}}`)
	gone.next(t)
	if err := gone.conn.WriteClose(1000, nil); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "aaa-gone offline", func() bool {
		var d struct{ Online bool }
		return getJSON(t, h, "/v1/devices/aaa-gone", &d) == http.StatusOK && !d.Online
	})
	// The device that keeps talking, with a rejection among its readings:
	// one a second over the last 45 s by its own clock, so the chart's
	// window shows them as a line.
	const before = 40
	start := time.Now().Add(-45 * time.Second).UnixMilli()
	live := dialDevice(t, h, "hist-1")
	for n := 1; n <= before; n++ {
		live.send(t, fmt.Sprintf(`{"type":"telemetry","seq":%d,"ts":%d,"values":{"temp":%.2f}}`,
			n, start+int64(n)*1000, wave(n, 21, 1.5, 8)))
		live.next(t)
		if n == before/2 {
			live.send(t, `{"type":"telemetry","values":{"bad name":1}}`)
			live.next(t)
		}
	}
	presence := len(events(t, h, "presence/#"))
	if presence != 3 {
		t.Fatalf("%d presence events retained, want 3 (aaa-gone on and off, hist-1 on)", presence)
	}

	ctx, errs := openDashboard(t, h, "/")
	t.Run("filled before any new reading", func(t *testing.T) {
		waitDOM(t, ctx, "hist-1 selected (the most recently active)", `document.querySelector('#detail-title').textContent === 'hist-1'`)
		waitDOM(t, ctx, fmt.Sprintf("the chart of hist-1 temp with its %d readings", before), fmt.Sprintf(
			`document.querySelector('#chart').dataset.series === 'hist-1\ntemp' && document.querySelector('#chart').dataset.total === '%d'`, before))
		waitDOM(t, ctx, "the rejection in the errors panel", `document.querySelectorAll('#error-list li[data-device="hist-1"]').length === 1`)
		waitDOM(t, ctx, "three presence changes", `document.querySelectorAll('#presence-list li').length === 3`)
		got := evalJS[[]string](t, ctx, `[...document.querySelectorAll('#presence-list li')].map(li =>
			li.dataset.device + ' ' + li.querySelector('.state').textContent)`)
		want := []string{"hist-1 online", "aaa-gone offline", "aaa-gone online"}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("presence panel %q, want %q (newest first)", got, want)
		}
		if !evalJS[bool](t, ctx, `document.querySelector('#chart-empty').hidden`) {
			t.Fatal(`the chart still says it is waiting for readings`)
		}
	})

	t.Run("live readings follow with no duplicate", func(t *testing.T) {
		const more = 5
		for n := before + 1; n <= before+more; n++ {
			live.send(t, fmt.Sprintf(`{"type":"telemetry","seq":%d,"values":{"temp":%.2f}}`, n, wave(n, 21, 1.5, 8)))
			live.next(t)
		}
		waitDOM(t, ctx, fmt.Sprintf("%d readings in the chart", before+more),
			fmt.Sprintf(`document.querySelector('#chart').dataset.total === '%d'`, before+more))
		live.send(t, `{"type":"telemetry","values":{"bad name":2}}`)
		live.next(t)
		waitDOM(t, ctx, "the second rejection, listed and counted", `document.querySelectorAll('#error-list li').length === 2 &&
			document.querySelector('#stat-errors').textContent === '2'`)
		if n := evalJS[int](t, ctx, `document.querySelectorAll('#presence-list li').length`); n != 3 {
			t.Fatalf("%d presence changes listed, want still 3", n)
		}
		if n := evalJS[string](t, ctx, `document.querySelector('#chart').dataset.total`); n != fmt.Sprint(before+more) {
			t.Fatalf("chart holds %s readings, want %d", n, before+more)
		}
	})
	screenshot(t, ctx, "dashboard-history.png")

	t.Run("delete a device", func(t *testing.T) {
		selectRow(t, ctx, "aaa-gone")
		waitDOM(t, ctx, "aaa-gone selected", `document.querySelector('#detail-title').textContent === 'aaa-gone'`)
		confirmDelete(t, ctx)
		waitDOM(t, ctx, "aaa-gone gone from the list", `!document.querySelector('tr[data-device="aaa-gone"]') &&
			document.querySelector('#delete-bar').dataset.state === 'done'`)
		if status := getJSON(t, h, "/v1/devices/aaa-gone", nil); status != http.StatusNotFound {
			t.Fatalf("GET /v1/devices/aaa-gone after deleting it: %d, want 404", status)
		}
		waitDOM(t, ctx, "another device selected", `document.querySelector('#detail-title').textContent === 'hist-1'`)
	})
	errs.check(t)
}

// TestDashboardStartsOnEmptyHub opens the dashboard before the hub has any
// event: the stream starts live and its first event becomes the boundary
// of history, so what follows is shown once.
func TestDashboardStartsOnEmptyHub(t *testing.T) {
	h := startHub(t, testConfig(t))
	ctx, errs := openDashboard(t, h, "/")
	waitDOM(t, ctx, "its stream as live", `document.querySelector('#conn').dataset.state === 'live'`)
	d := dialDevice(t, h, "first-1")
	for n := 1; n <= 3; n++ {
		d.send(t, fmt.Sprintf(`{"type":"telemetry","seq":%d,"values":{"temp":%d}}`, n, 20+n))
		d.next(t)
	}
	d.send(t, `{"type":"telemetry","values":{"bad name":1}}`)
	d.next(t)
	waitDOM(t, ctx, "first-1 charted with its 3 readings", `document.querySelector('#chart').dataset.series === 'first-1\ntemp' &&
		document.querySelector('#chart').dataset.total === '3'`)
	waitDOM(t, ctx, "one rejection and one presence change", `document.querySelectorAll('#error-list li').length === 1 &&
		document.querySelectorAll('#presence-list li').length === 1`)
	errs.check(t)
}
