package hub

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/telehub/telehub/internal/config"
)

// commandRow is how the dashboard shows one command of the selected
// device.
type commandRow struct {
	ID     string `json:"id"`
	State  string `json:"state"`
	Name   string `json:"name"`
	Result string `json:"result"`
}

// commandRows reads the commands panel's list, top to bottom.
func commandRows(t *testing.T, ctx context.Context) []commandRow {
	t.Helper()
	return evalJS[[]commandRow](t, ctx, `[...document.querySelectorAll('#command-list li')].map(li => ({
		id: li.dataset.id, state: li.dataset.state, name: li.querySelector('.cname').textContent,
		result: (li.querySelector('.result') || {}).textContent || '' }))`)
}

// waitCommandRow waits until the panel shows command id in state.
func waitCommandRow(t *testing.T, ctx context.Context, id, state string) {
	t.Helper()
	waitDOM(t, ctx, "command "+id+" "+state+" in the panel", fmt.Sprintf(
		`(document.querySelector('#command-list li[data-id=%q]') || {dataset: {}}).dataset.state === %q`, id, state))
}

// sendFromPage fills the panel's form and clicks Send.
func sendFromPage(t *testing.T, ctx context.Context, name, params, ttl string) {
	t.Helper()
	evalJS[bool](t, ctx, fmt.Sprintf(`(() => {
		document.querySelector('#command-name').value = %q;
		document.querySelector('#command-params').value = %q;
		document.querySelector('#command-ttl').value = %q;
		return true; })()`, name, params, ttl))
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`#command-send`))); err != nil {
		t.Fatalf("click Send: %v", err)
	}
}

// commandMessage is the panel's answer to the last send: its state and text.
func commandMessage(t *testing.T, ctx context.Context, state string) string {
	t.Helper()
	waitDOM(t, ctx, "the send answer "+state, fmt.Sprintf(
		`!document.querySelector('#command-msg').hidden && document.querySelector('#command-msg').dataset.state === %q`, state))
	return evalJS[string](t, ctx, `document.querySelector('#command-msg').textContent`)
}

// TestDashboardCommands drives the commands panel in Chromium: the
// selected device's commands listed newest first with their states, each
// change shown live as the device answers, a command sent from the form
// reaching the device, params that are not a JSON object refused in the
// page, and a device's result shown as text.
func TestDashboardCommands(t *testing.T) {
	h := startHub(t, testConfig(t))
	d := dialDevice(t, h, "pump-1")
	d.send(t, `{"type":"telemetry","seq":1,"values":{"temp":20}}`)
	d.next(t)
	older := createCommand(t, h, "pump-1", `{"name":"calibrate","params":{"zero":true}}`)
	if f := d.nextOfType(t, "command"); f["id"] != older.ID {
		t.Fatalf("device got %v, want %s", f, older.ID)
	}
	waitCommand(t, h, older.ID, "sent")
	other := dialDevice(t, h, "pump-2") // below pump-1 in the list: where the down arrow would go
	other.send(t, `{"type":"telemetry","seq":1,"values":{"temp":20}}`)
	other.next(t)

	ctx, errs := openDashboard(t, h, "/#device=pump-1")
	waitDOM(t, ctx, "its stream as live", `document.querySelector('#conn').dataset.state === 'live'`)
	waitDOM(t, ctx, "pump-1 selected", `document.querySelector('#detail-title').textContent === 'pump-1'`)

	t.Run("listed from the hub, then live", func(t *testing.T) {
		waitCommandRow(t, ctx, older.ID, "sent")
		d.send(t, fmt.Sprintf(`{"type":"command_ack","id":%q}`, older.ID))
		waitCommandRow(t, ctx, older.ID, "delivered")
		d.send(t, fmt.Sprintf(`{"type":"command_result","id":%q,"status":"error","message":"<img src=x onerror=alert(1)>"}`, older.ID))
		waitCommandRow(t, ctx, older.ID, "failed")
		rows := commandRows(t, ctx)
		if len(rows) != 1 || !strings.Contains(rows[0].Result, "<img src=x onerror=alert(1)>") {
			t.Fatalf("rows %+v, want the device's message as text", rows)
		}
		if n := evalJS[int](t, ctx, `document.querySelectorAll('main img').length`); n != 0 {
			t.Fatalf("%d img elements: a device's message became markup", n)
		}
	})

	t.Run("params must be a JSON object", func(t *testing.T) {
		for _, params := range []string{`[1, 2]`, `{"seconds": `, `5`, `null`} {
			sendFromPage(t, ctx, "set_interval", params, "")
			if msg := commandMessage(t, ctx, "invalid"); !strings.Contains(msg, "JSON") {
				t.Errorf("params %s: message %q, want it to say what JSON is needed", params, msg)
			}
		}
		var list struct{ Commands []command }
		if getJSON(t, h, "/v1/devices/pump-1/commands", &list); len(list.Commands) != 1 {
			t.Fatalf("the hub has %d commands of pump-1: a refused form was sent", len(list.Commands))
		}
	})

	t.Run("sent from the page", func(t *testing.T) {
		sendFromPage(t, ctx, "set_interval", `{"seconds": 5}`, "5m")
		if msg := commandMessage(t, ctx, "ok"); !strings.Contains(msg, "set_interval") {
			t.Fatalf("message %q", msg)
		}
		f := d.nextOfType(t, "command")
		params, _ := f["params"].(map[string]any)
		if f["name"] != "set_interval" || params["seconds"] != float64(5) {
			t.Fatalf("device got %v, want set_interval with seconds 5", f)
		}
		id := f["id"].(string)
		waitCommandRow(t, ctx, id, "sent")
		if rows := commandRows(t, ctx); len(rows) != 2 || rows[0].ID != id || rows[1].ID != older.ID {
			t.Fatalf("rows %+v, want the new command first", rows)
		}
		d.send(t, fmt.Sprintf(`{"type":"command_ack","id":%q}`, id))
		d.send(t, fmt.Sprintf(`{"type":"command_result","id":%q,"status":"ok","result":{"interval":5}}`, id))
		waitCommandRow(t, ctx, id, "succeeded")
		if c := commandState(t, h, id); c.Expires == "" || c.State != "succeeded" {
			t.Fatalf("hub has %+v", c)
		}
	})

	t.Run("typing in the form is only typing", func(t *testing.T) {
		evalJS[bool](t, ctx, `(() => { document.querySelector('#command-params').value = ''; return true; })()`)
		const typed = `{"url":"a/b"}`
		if err := chromedp.Do(ctx, chromedp.SendKeys(chromedp.CSS(`#command-params`), typed+kb.ArrowDown)); err != nil {
			t.Fatalf("type params: %v", err)
		}
		got := evalJS[map[string]string](t, ctx, `({params: document.querySelector('#command-params').value,
			focus: document.activeElement.id, device: document.querySelector('#detail-title').textContent})`)
		if got["params"] != typed || got["focus"] != "command-params" || got["device"] != "pump-1" {
			t.Fatalf("after typing %s and the down arrow: %v, want the text in the params field, still focused, pump-1 still selected", typed, got)
		}
	})

	t.Run("the hub's refusal is shown", func(t *testing.T) {
		sendFromPage(t, ctx, "bad/name", "", "")
		if msg := commandMessage(t, ctx, "invalid"); !strings.Contains(msg, "refused") {
			t.Fatalf("message %q, want the hub's refusal", msg)
		}
	})
	screenshot(t, ctx, "dashboard-commands.png")
	errs.check(t, "status of 400")
}

// TestDashboardCommandsNeedAToken opens the dashboard of a hub with
// credentials: a watcher token without a commands scope sees the device
// but the panel says it may not command it and offers no form (also when
// its topics leave out commands/#); a token whose commands scope covers
// pump-7 sends to pump-7 and is refused for fan-1; the admin token may
// command any device.
func TestDashboardCommandsNeedAToken(t *testing.T) {
	const (
		fleetTok = "fleet-watcher-token-0123456789"
		ctlTok   = "pump-7-commander-token-0123456789"
		fanTok   = "fan-1-device-token-0123456789"
	)
	cfg := securedConfig(t)
	cfg.DeviceTokens["fan-1"] = fanTok
	cfg.WatcherTokens = append(cfg.WatcherTokens,
		config.WatcherToken{Name: "fleet", Token: fleetTok, Topics: []string{"telemetry/#", "presence/#", "errors/#"}},
		config.WatcherToken{Name: "pump-ctl", Token: ctlTok, Topics: []string{"#"}, Commands: []string{"pump-7"}})
	h := startHub(t, cfg)
	d := dialDeviceWith(t, h, "pump-7", "", bearer(pumpTok))
	d.send(t, `{"type":"telemetry","seq":1,"values":{"temp":21.5}}`)
	d.next(t)
	fan := dialDeviceWith(t, h, "fan-1", "", bearer(fanTok))
	fan.send(t, `{"type":"telemetry","seq":1,"values":{"rpm":900}}`)
	fan.next(t)
	ctx, errs := openDashboard(t, h, "/healthz")
	open := func(t *testing.T, tok, device string) {
		t.Helper()
		navigate(t, ctx, h, "/?token="+url.QueryEscape(tok)+"#device="+device)
		waitDOM(t, ctx, "its stream as live", `document.querySelector('#conn').dataset.state === 'live'`)
		waitDOM(t, ctx, device+" selected", fmt.Sprintf(`document.querySelector('#detail-title').textContent === %q`, device))
	}
	refused := func(t *testing.T) {
		t.Helper()
		waitDOM(t, ctx, "the refusal", `document.querySelector('#commands').dataset.access === 'refused'`)
		note := evalJS[string](t, ctx, `document.querySelector('#commands-note').textContent`)
		if !strings.Contains(note, "admin token") || !strings.Contains(note, "commands scope") || !strings.Contains(note, "?token=") {
			t.Errorf("note %q, want it to say which token commands and how to open the page with it", note)
		}
		if !evalJS[bool](t, ctx, `document.querySelector('#command-form').hidden`) {
			t.Error("the form is offered to a token that may not command")
		}
	}

	for _, tok := range []string{opsTok, fleetTok} {
		t.Run("watcher "+tok[:5], func(t *testing.T) {
			open(t, tok, "pump-7")
			refused(t)
		})
	}

	t.Run("commands scope", func(t *testing.T) {
		open(t, ctlTok, "pump-7")
		waitDOM(t, ctx, "the form", `document.querySelector('#commands').dataset.access === 'ok' &&
			!document.querySelector('#command-form').hidden`)
		sendFromPage(t, ctx, "ping", "", "")
		commandMessage(t, ctx, "ok")
		id, _ := d.nextOfType(t, "command")["id"].(string)
		waitCommandRow(t, ctx, id, "sent")
		d.send(t, fmt.Sprintf(`{"type":"command_result","id":%q,"status":"ok"}`, id))
		waitCommandRow(t, ctx, id, "succeeded")

		click(t, ctx, `tr[data-device="fan-1"]`)
		refused(t)
	})

	t.Run("admin", func(t *testing.T) {
		open(t, adminTok, "fan-1")
		waitDOM(t, ctx, "the form", `document.querySelector('#commands').dataset.access === 'ok' &&
			!document.querySelector('#command-form').hidden`)
		sendFromPage(t, ctx, "spin", `{"rpm": 1200}`, "")
		commandMessage(t, ctx, "ok")
		if f := fan.nextOfType(t, "command"); f["name"] != "spin" {
			t.Fatalf("fan-1 got %v", f)
		}
	})
	errs.check(t, "status of 403", "/favicon.ico")
}
