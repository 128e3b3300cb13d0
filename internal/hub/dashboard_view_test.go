package hub

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
)

// openDashboard starts Chromium on the dashboard at path (e.g. "/" or
// "/?token=…") of h and returns the tab and its console.
func openDashboard(t *testing.T, h *Hub, path string) (context.Context, *pageErrors) {
	t.Helper()
	chromium := chromiumPath()
	if chromium == "" {
		requireExternal(t, "chromium")
	}
	ctx := browser(t, chromium)
	errs := watchConsole(t, ctx)
	navigate(t, ctx, h, path)
	return ctx, errs
}

// navigate opens path of h in the tab: a fresh page.
func navigate(t *testing.T, ctx context.Context, h *Hub, path string) {
	t.Helper()
	if err := chromedp.Do(ctx, chromedp.Navigate("http://"+h.HTTPAddr()+path)); err != nil {
		t.Fatalf("open dashboard %s: %v", path, err)
	}
}

// rejectedTotal is telehub_payloads_rejected_total summed over reasons, as
// /metrics reports it.
func rejectedTotal(t *testing.T, h *Hub) float64 {
	t.Helper()
	sum := 0.0
	for _, m := range scrape(t, h)["telehub_payloads_rejected_total"].GetMetric() {
		sum += m.GetCounter().GetValue()
	}
	return sum
}

// TestDashboardReadsWell checks what the page shows for things that used
// to read badly: a slowly changing metric's y-axis, ids in the rejected
// panel, the order of numbered devices, devices with many metrics, and the
// header's rejected count.
func TestDashboardReadsWell(t *testing.T) {
	h := startHub(t, testConfig(t))
	for _, id := range []string{"sim-10", "sim-2", "sim-1"} {
		d := dialDevice(t, h, id)
		d.send(t, `{"type":"telemetry","seq":1,"values":{"temp":20}}`)
		d.next(t)
	}
	ctx, errs := openDashboard(t, h, "/")
	waitDOM(t, ctx, "its stream as live", `document.querySelector('#conn').dataset.state === 'live'`)

	// A slowly changing pressure among six metrics: the axis spans less
	// than a thousandth of its value.
	slow := dialDevice(t, h, "slow-7")
	for n := 1; n <= 20; n++ {
		slow.send(t, fmt.Sprintf(`{"type":"telemetry","seq":%d,"values":{"pressure":%.4f,"temp":21.5,"hum":40,"rpm":1200,"volts":230.1,"amps":3.25}}`,
			n, 655.7+float64(n)*0.0004))
		slow.next(t)
	}

	// Rejections: one over WebSocket, one from an MQTT device with a long
	// id, one for an invalid device id, which no event reports but the
	// hub's counter counts.
	bad := dialDevice(t, h, "sim-2")
	bad.send(t, `{"type":"telemetry","seq":2,"values":{"bad name":1}}`)
	bad.next(t)
	const mqttID = "sim-mqtt-device-with-a-long-id-40"
	c := mqttClient(t, h, mqttID, nil)
	publish(t, c, "devices/"+mqttID+"/telemetry", 1, `{"temp":`)
	publish(t, mqttClient(t, h, "anonymous-1", nil), "devices/-bad/telemetry", 1, `{"temp":1}`)
	waitFor(t, "three rejections counted", func() bool { return rejectedTotal(t, h) == 3 })

	t.Run("numbered devices in natural order", func(t *testing.T) {
		waitDOM(t, ctx, "sim-1, sim-2, sim-10 in this order", `[...document.querySelectorAll('#device-rows tr')]
			.map(r => r.dataset.device).filter(id => /^sim-\d+$/.test(id)).join() === 'sim-1,sim-2,sim-10'`)
	})

	t.Run("every latest value shows", func(t *testing.T) {
		waitDOM(t, ctx, "six values of slow-7", `document.querySelectorAll('tr[data-device="slow-7"] .kv .v').length === 6 &&
			[...document.querySelectorAll('tr[data-device="slow-7"] .kv .v')].every(v => v.textContent !== '–')`)
		hidden := evalJS[[]string](t, ctx, `(() => {
			const td = document.querySelector('tr[data-device="slow-7"] td.values');
			const box = td.getBoundingClientRect();
			return [...td.querySelectorAll('.kv')].filter(kv => {
				const r = kv.getBoundingClientRect();
				return r.right > box.right + 0.5 || r.bottom > box.bottom + 0.5 || r.width === 0;
			}).map(kv => kv.dataset.metric);
		})()`)
		if len(hidden) > 0 {
			t.Fatalf("latest values cut off in the device list: %v", hidden)
		}
	})

	t.Run("y-axis labels differ for a slowly changing metric", func(t *testing.T) {
		selectRow(t, ctx, "slow-7")
		waitDOM(t, ctx, "a pressure card", `!!document.querySelector('#metric-grid [data-metric="pressure"]')`)
		clickUntil(t, ctx, `#metric-grid [data-metric="pressure"]`, "slow-7's pressure charted",
			`document.querySelector('#chart').dataset.series === 'slow-7\npressure'`)
		waitDOM(t, ctx, "a chart of slow-7 pressure", `Number(document.querySelector('#chart').dataset.points) >= 2`)
		ticks := evalJS[string](t, ctx, `document.querySelector('#chart').dataset.ticks`)
		if !distinct(ticks) {
			t.Fatalf("y-axis labels %q: want three or more, all different", ticks)
		}
		stats := evalJS[[]string](t, ctx, `[...document.querySelectorAll('#chart-stats .n')].map(n => n.textContent)`)
		if len(stats) != 3 || stats[0] == stats[2] {
			t.Fatalf("chart min, avg, max %q: want min and max to differ", stats)
		}
	})

	t.Run("rejected panel shows whole device ids", func(t *testing.T) {
		waitDOM(t, ctx, "the MQTT device's rejection", fmt.Sprintf(`!!document.querySelector('#error-list li[data-device=%q]')`, mqttID))
		got := evalJS[string](t, ctx, fmt.Sprintf(`(() => {
			const dev = document.querySelector('#error-list li[data-device=%q] .dev');
			const li = dev.closest('li').getBoundingClientRect(), r = dev.getBoundingClientRect();
			const cut = dev.scrollWidth > dev.clientWidth + 1 || r.right > li.right + 0.5;
			return cut ? 'cut: ' + dev.scrollWidth + ' > ' + dev.clientWidth : dev.textContent;
		})()`, mqttID))
		if got != mqttID {
			t.Fatalf("rejected panel shows the device as %q, want %q in full", got, mqttID)
		}
	})

	t.Run("header counts rejections as the hub does", func(t *testing.T) {
		want := strconv.FormatFloat(rejectedTotal(t, h), 'f', -1, 64)
		waitDOM(t, ctx, "the rejected count "+want, fmt.Sprintf(`document.querySelector('#stat-errors').textContent === %q`, want))
		// The panel lists the two rejections events report; the header
		// also counts the invalid device id, as the metric does.
		if got := evalJS[[]string](t, ctx, `[...document.querySelectorAll('#error-list li')].map(li => li.textContent)`); len(got) != 2 {
			t.Fatalf("rejected panel lists %q, want 2 payloads", got)
		}
		bad.send(t, `{"type":"telemetry","seq":3,"values":{"bad name":2}}`)
		bad.next(t)
		waitDOM(t, ctx, "the rejected count 4", `document.querySelector('#stat-errors').textContent === '4'`)
	})
	errs.check(t)
}

// distinct reports whether the space-separated labels are three or more
// and all different.
func distinct(labels string) bool {
	fields := strings.Fields(labels)
	seen := map[string]bool{}
	for _, l := range fields {
		if seen[l] {
			return false
		}
		seen[l] = true
	}
	return len(fields) >= 3
}
