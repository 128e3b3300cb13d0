package hub

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// chromiumPath finds the browser the dashboard test drives.
func chromiumPath() string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// browser starts a headless Chromium with a fresh profile and returns a
// tab context. The browser is closed, and its goroutines waited for, when
// the test ends (before the hub stops: cleanups run last-in first-out).
func browser(t *testing.T, path string) context.Context {
	t.Helper()
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(path),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("hide-scrollbars", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1440, 900),
	)
	ctx, cancel := chromedp.NewContext(allocCtx)
	t.Cleanup(func() {
		if err := chromedp.Cancel(ctx); err != nil && !errors.Is(err, context.Canceled) {
			t.Logf("closing chromium: %v", err)
		}
		cancel()
		cancelAlloc()
	})
	// The first Do starts the browser; its life is bound to ctx.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return ctx
}

// pageErrors collects uncaught exceptions and console errors of the page.
type pageErrors struct {
	mu   sync.Mutex
	msgs []string
	done chan struct{}
}

func watchConsole(t *testing.T, ctx context.Context) *pageErrors {
	t.Helper()
	ctx, cancel := context.WithCancel(ctx)
	msgs := chromedp.Console(ctx) // subscribes now, before the page loads
	pe := &pageErrors{done: make(chan struct{})}
	go func() {
		defer close(pe.done)
		for m, err := range msgs {
			if err != nil {
				return // the subscription or the browser ended
			}
			if m.IsException() || m.Type == chromedp.ConsoleError {
				pe.mu.Lock()
				pe.msgs = append(pe.msgs, fmt.Sprintf("%s (%s:%d)", m, m.URL, m.Line))
				pe.mu.Unlock()
			}
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-pe.done
	})
	return pe
}

// check fails the test for every page error but those containing one of
// expected: the browser logs a request the hub refused, or could not
// answer while it was down, as an error.
func (pe *pageErrors) check(t *testing.T, expected ...string) {
	t.Helper()
	pe.mu.Lock()
	defer pe.mu.Unlock()
next:
	for _, m := range pe.msgs {
		for _, e := range expected {
			if strings.Contains(m, e) {
				continue next
			}
		}
		t.Errorf("page error: %s", m)
	}
}

// waitDOM polls a JavaScript predicate in the page until it is true. On
// timeout it fails with the page's visible text, which says what the
// dashboard did show.
func waitDOM(t *testing.T, ctx context.Context, what, predicate string) {
	t.Helper()
	pctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	_, err := chromedp.Run(pctx, chromedp.Poll[bool](predicate,
		chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(0)))
	if err != nil {
		text, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body.innerText`))
		t.Fatalf("dashboard never showed %s: %v\npage text:\n%s", what, err, text)
	}
}

// click clicks the middle of the element sel matches, as a user would,
// once it is on screen and nothing covers its middle. chromedp.Click does
// not do for the page's lists: it resolves the element to a DevTools node
// id and clicks by that id a moment later, but the dashboard re-renders
// its device list (on any presence change) and metric cards by putting
// their elements in again, which gives them new node ids. On a loaded
// machine a re-render fell in between: "Could not find node with given id".
func click(t *testing.T, ctx context.Context, sel string) {
	t.Helper()
	middle := fmt.Sprintf(`(() => {
		const e = document.querySelector(%s);
		if (!e) return null;
		e.scrollIntoView({block: "nearest"});
		const r = e.getBoundingClientRect();
		const x = r.left + r.width / 2, y = r.top + r.height / 2;
		const hit = document.elementFromPoint(x, y);
		return hit && e.contains(hit) ? [x, y] : null;
	})()`, strconv.Quote(sel))
	pctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	at, err := chromedp.Run(pctx, chromedp.Poll[[]float64](middle,
		chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(0)))
	if err != nil || len(at) != 2 {
		t.Fatalf("%s never on screen to click: %v %v", sel, at, err)
	}
	if err := chromedp.Do(ctx, chromedp.MouseClickXY(at[0], at[1])); err != nil {
		t.Fatalf("click %s: %v", sel, err)
	}
}

// clickUntil clicks sel until the predicate done holds, checking before
// each click and for a couple of seconds after it: the page may move
// between click finding the element's middle and the click landing (a
// re-render, a panel growing), and the click then hits something else.
func clickUntil(t *testing.T, ctx context.Context, sel, what, done string) {
	t.Helper()
	for range 8 {
		if evalJS[bool](t, ctx, done) {
			return
		}
		click(t, ctx, sel)
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		_, err := chromedp.Run(pctx, chromedp.Poll[bool](done,
			chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(0)))
		cancel()
		if err == nil {
			return
		}
	}
	text, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body.innerText`))
	t.Fatalf("clicking %s never gave %s\npage text:\n%s", sel, what, text)
}

// selectRow selects device id in the device list by clicking its row.
func selectRow(t *testing.T, ctx context.Context, id string) {
	t.Helper()
	sel := fmt.Sprintf(`tr[data-device=%q]`, id)
	clickUntil(t, ctx, sel, id+" selected",
		fmt.Sprintf(`document.querySelector(%s)?.getAttribute('aria-selected') === 'true'`, strconv.Quote(sel)))
}

func evalJS[T any](t *testing.T, ctx context.Context, expr string) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// talker is a device the feeder keeps talking: send delivers reading n.
type talker struct {
	id   string
	send func(n int) error
	in   *wsDevice // acks to drain, for WebSocket devices
}

// wsTalker sends frame(n) over a WebSocket device connection.
func wsTalker(d *wsDevice, id string, frame func(n int) string) talker {
	return talker{id: id, in: d, send: func(n int) error { return d.conn.WriteString(frame(n)) }}
}

// mqttTalker publishes payload(n) at QoS 0 under the device's telemetry
// topic; QoS 0 so the feeder never waits on the broker.
func mqttTalker(c mqtt.Client, id string, payload func(n int) string) talker {
	return talker{id: id, send: func(n int) error {
		c.Publish("devices/"+id+"/telemetry", 0, false, payload(n))
		return nil
	}}
}

// wave is a smooth reading for tick n: base plus a slow swing and a ripple.
func wave(n int, base, swing, period float64) float64 {
	x := float64(n) / period
	return base + swing*math.Sin(x) + swing/5*math.Sin(3.7*x)
}

// feeder keeps devices talking: every tick each device sends a reading,
// and the hub's acks are drained. The test's cleanup stops and waits for
// it.
type feeder struct {
	stop     chan struct{}
	stopOnce sync.Once
	done     chan struct{}
	mu       sync.Mutex
	err      error
}

func feed(t *testing.T, talkers []talker) *feeder {
	t.Helper()
	f := &feeder{stop: make(chan struct{}), done: make(chan struct{})}
	go f.run(talkers)
	t.Cleanup(func() { f.halt(t) })
	return f
}

// halt stops the feeder, waits for it, and reports a failed send.
func (f *feeder) halt(t *testing.T) {
	t.Helper()
	f.stopOnce.Do(func() { close(f.stop) })
	<-f.done
	if err := f.failure(); err != nil {
		t.Errorf("feeding devices: %v", err)
	}
}

func (f *feeder) run(talkers []talker) {
	defer close(f.done)
	tick := time.NewTicker(150 * time.Millisecond)
	defer tick.Stop()
	for n := 1; ; n++ {
		select {
		case <-f.stop:
			return
		case <-tick.C:
		}
		for _, d := range talkers {
			if err := d.send(n); err != nil {
				f.mu.Lock()
				f.err = fmt.Errorf("%s: %w", d.id, err)
				f.mu.Unlock()
				return
			}
			if d.in != nil {
				drain(d.in)
			}
		}
	}
}

func (f *feeder) failure() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.err
}

func drain(d *wsDevice) {
	for {
		select {
		case <-d.in:
		default:
			return
		}
	}
}

// TestDashboard drives the real dashboard in headless Chromium against an
// in-process hub: devices are listed from REST and live events, values
// update, the chart draws, a silent device turns offline, rejected payloads
// appear, device-supplied strings stay text, and the filter works. It
// leaves a screenshot in the test's temp dir and, when
// TELEHUB_SCREENSHOT_DIR is set, there too.
func TestDashboard(t *testing.T) {
	path := chromiumPath()
	if path == "" {
		requireExternal(t, "chromium")
	}
	cfg := testConfig(t)
	cfg.DeviceTimeout = 2 * time.Second
	h := startHub(t, cfg)
	base := "http://" + h.HTTPAddr() + "/"

	// Devices that keep talking (WebSocket plain values and SenML, MQTT),
	// known before the page loads (REST initial state).
	pump1, pump2 := dialDevice(t, h, "pump-1"), dialDevice(t, h, "pump-2")
	pump := func(base float64) func(int) string {
		return func(n int) string {
			return fmt.Sprintf(`{"type":"telemetry","values":{"temp":%.2f,"hum":%.1f,"rpm":%.0f,"valve":%t}}`,
				wave(n, base, 1.5, 12), wave(n, 45, 6, 30), wave(n, 1200, 40, 9), n%40 < 20)
		}
	}
	boiler := func(n int) string {
		return fmt.Sprintf(`{"type":"telemetry","senml":[{"bn":"burner.","bu":"Cel","n":"temp","v":%.1f},`+
			`{"n":"pressure","u":"bar","v":%.3f},{"n":"flame","vb":%t}]}`,
			wave(n, 68, 4, 20), wave(n, 1.8, 0.1, 15), n%30 < 24)
	}
	meter := func(n int) string {
		return fmt.Sprintf(`{"power":%.0f,"voltage":%.1f}`, wave(n, 3200, 400, 10), wave(n, 230, 2, 25))
	}
	f := feed(t, []talker{
		wsTalker(pump1, "pump-1", pump(21)),
		wsTalker(pump2, "pump-2", pump(24)),
		wsTalker(dialDevice(t, h, "boiler-3"), "boiler-3", boiler),
		mqttTalker(mqttClient(t, h, "meter-5", nil), "meter-5", meter),
	})

	ctx := browser(t, path)
	errs := watchConsole(t, ctx)
	if err := chromedp.Do(ctx, chromedp.Navigate(base)); err != nil {
		t.Fatalf("open dashboard: %v", err)
	}
	// A device that says one thing and goes silent while the page watches.
	quiet := dialDevice(t, h, "sensor-9")
	quiet.send(t, `{"type":"telemetry","seq":1,"values":{"temp":18.5,"door":"<img src=x onerror=alert(1)>"}}`)
	quiet.next(t)

	t.Run("connected and listing devices", func(t *testing.T) {
		waitDOM(t, ctx, "its stream as live", `document.querySelector('#conn').dataset.state === 'live'`)
		for _, id := range []string{"pump-1", "pump-2", "boiler-3", "meter-5", "sensor-9"} {
			waitDOM(t, ctx, id+" in the device list", fmt.Sprintf(`!!document.querySelector('#device-rows tr[data-device=%q]')`, id))
		}
		waitDOM(t, ctx, "pump-1 online", `document.querySelector('tr[data-device="pump-1"]').dataset.online === 'true'`)
	})

	t.Run("values update live", func(t *testing.T) {
		first := evalJS[string](t, ctx, `document.querySelector('tr[data-device="pump-1"] [data-metric="temp"] .v').textContent`)
		waitDOM(t, ctx, "a new temp of pump-1", fmt.Sprintf(
			`(() => { const v = document.querySelector('tr[data-device="pump-1"] [data-metric="temp"] .v'); return v && v.textContent !== %q && v.textContent !== '–'; })()`, first))
	})

	t.Run("chart draws the selected metric", func(t *testing.T) {
		selectRow(t, ctx, "pump-1")
		waitDOM(t, ctx, "pump-1 in the detail panel", `document.querySelector('#detail-title').textContent === 'pump-1'`)
		waitDOM(t, ctx, "a temp card", `!!document.querySelector('#metric-grid [data-metric="temp"]')`)
		click(t, ctx, `#metric-grid [data-metric="temp"]`)
		waitDOM(t, ctx, "a chart of pump-1 temp with several points",
			`document.querySelector('#chart').dataset.series === 'pump-1\ntemp' && Number(document.querySelector('#chart').dataset.points) >= 5`)
		// The canvas really has a line on it: count painted pixels.
		painted := evalJS[int](t, ctx, `(() => {
			const c = document.querySelector('#chart');
			const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
			let n = 0;
			for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++;
			return n;
		})()`)
		if painted < 1000 {
			t.Fatalf("chart canvas has %d painted pixels, want a drawn chart", painted)
		}
	})

	t.Run("device strings stay text", func(t *testing.T) {
		waitDOM(t, ctx, "sensor-9's door value as text",
			`(document.querySelector('tr[data-device="sensor-9"] [data-metric="door"] .v') || {}).textContent === '<img src=x onerror=alert(1)>'`)
		if n := evalJS[int](t, ctx, `document.querySelectorAll('main img').length`); n != 0 {
			t.Fatalf("%d img elements in the page: a device string became markup", n)
		}
	})

	t.Run("rejected payload appears", func(t *testing.T) {
		pump2.send(t, `{"type":"telemetry","seq":7,"values":{"<b>bad metric</b>":1}}`)
		waitDOM(t, ctx, "pump-2's rejection in the errors panel",
			`[...document.querySelectorAll('#error-list li')].some(li => li.dataset.device === 'pump-2' && li.querySelector('.msg').textContent.length > 0)`)
		if n := evalJS[int](t, ctx, `document.querySelectorAll('#error-list b').length`); n != 0 {
			t.Fatal("an error message became markup")
		}
		waitDOM(t, ctx, "the rejected counter above 0", `document.querySelector('#stat-errors').textContent !== '0'`)
		// An SSE event named "error" also fires EventSource's onerror: the
		// page must not take it for a broken connection.
		if got := evalJS[string](t, ctx, `document.querySelector('#conn').dataset.state`); got != "live" {
			t.Fatalf("connection state %q after an error event, want live", got)
		}
	})

	t.Run("silent device goes offline", func(t *testing.T) {
		waitDOM(t, ctx, "sensor-9 offline", `document.querySelector('tr[data-device="sensor-9"]').dataset.online === 'false'`)
		waitDOM(t, ctx, "sensor-9 offline in the presence log",
			`[...document.querySelectorAll('#presence-list li')].some(li => li.dataset.device === 'sensor-9' && li.querySelector('.state.off'))`)
		if online := evalJS[string](t, ctx, `document.querySelector('tr[data-device="pump-1"]').dataset.online`); online != "true" {
			t.Fatalf("pump-1 online=%s, want true: it keeps talking", online)
		}
	})

	// Under a status filter a presence change moves a device in or out of
	// the list by itself (without one, only the device's row is redrawn).
	t.Run("status filter follows presence", func(t *testing.T) {
		click(t, ctx, `#status-filter button[data-status="offline"]`)
		waitDOM(t, ctx, "only sensor-9 listed as offline",
			`[...document.querySelectorAll('#device-rows tr')].map(r => r.dataset.device).join() === 'sensor-9'`)
		// The hub closed the silent connection a second after the device
		// timed out: the device comes back on a new one.
		back := dialDevice(t, h, "sensor-9")
		back.send(t, `{"type":"telemetry","seq":2,"values":{"temp":18.6}}`)
		back.next(t)
		waitDOM(t, ctx, "sensor-9 out of the offline list once it talks", `document.querySelectorAll('#device-rows tr').length === 0`)
		click(t, ctx, `#status-filter button[data-status="all"]`)
		waitDOM(t, ctx, "every device listed again", `document.querySelectorAll('#device-rows tr').length === 5`)
	})

	// The screenshots show the whole console before the filter narrows it:
	// first once the chart has a few seconds of readings, then on a phone.
	waitDOM(t, ctx, "a fuller chart", `Number(document.querySelector('#chart').dataset.points) >= 40`)
	screenshot(t, ctx, "dashboard.png")
	t.Run("narrow screen", func(t *testing.T) {
		if err := chromedp.Do(ctx, chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(2))); err != nil {
			t.Fatalf("emulate a phone: %v", err)
		}
		waitDOM(t, ctx, "one column", `document.querySelector('.panel.devices').getBoundingClientRect().width < 400`)
		screenshot(t, ctx, "dashboard-narrow.png")
		if err := chromedp.Do(ctx, chromedp.EmulateViewport(1440, 900)); err != nil {
			t.Fatalf("restore the viewport: %v", err)
		}
	})

	t.Run("filter narrows the list", func(t *testing.T) {
		if err := chromedp.Do(ctx, chromedp.SendKeys(chromedp.CSS(`#filter`), "pump-2")); err != nil {
			t.Fatalf("type in filter: %v", err)
		}
		waitDOM(t, ctx, "only pump-2 listed",
			`(() => { const rows = [...document.querySelectorAll('#device-rows tr')]; return rows.length === 1 && rows[0].dataset.device === 'pump-2'; })()`)
	})

	// A hub restarted on another data directory no longer knows the
	// page's last event id: the browser reconnects with it by itself, the
	// hub answers "reset", and the page drops its state and reloads it.
	t.Run("reset after the hub changed reloads state", func(t *testing.T) {
		evalJS[bool](t, ctx, `(() => { const f = document.querySelector('#filter'); f.value = ''; f.dispatchEvent(new Event('input')); return true; })()`)
		f.halt(t)
		stopHub(t, h)
		waitDOM(t, ctx, "the stream as down", `document.querySelector('#conn').dataset.state !== 'live'`)

		cfg2 := testConfig(t)
		cfg2.HTTPAddr = h.HTTPAddr()
		h2 := startHub(t, cfg2)
		fresh := dialDevice(t, h2, "fresh-1")
		fresh.send(t, `{"type":"telemetry","seq":1,"values":{"temp":30}}`)
		fresh.next(t)
		waitDOM(t, ctx, "the new hub's devices only",
			`document.querySelector('#conn').dataset.state === 'live' &&
			 [...document.querySelectorAll('#device-rows tr')].map(r => r.dataset.device).join() === 'fresh-1'`)
	})

	// The hub was down for a moment in the last subtest.
	errs.check(t, "net::ERR_CONNECTION_REFUSED")
}

// screenshot saves the page as name into t.TempDir() and, when
// TELEHUB_SCREENSHOT_DIR is set, there too.
func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	if len(png) < 8 || string(png[1:4]) != "PNG" {
		t.Fatalf("screenshot is not a PNG (%d bytes)", len(png))
	}
	dirs := []string{t.TempDir()}
	if d := os.Getenv("TELEHUB_SCREENSHOT_DIR"); d != "" {
		dirs = append(dirs, d)
	}
	for _, dir := range dirs {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, png, 0o644); err != nil {
			t.Fatalf("write screenshot: %v", err)
		}
		t.Logf("screenshot: %s", p)
	}
}
