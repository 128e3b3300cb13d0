package hub

import (
	"context"
	"net/url"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
)

// TestDashboardAuthProblems opens the dashboard of a hub with credentials
// with no token, a wrong one and one too narrow: the page says in the page
// what is wrong and what to do, and stops, instead of retrying for ever.
func TestDashboardAuthProblems(t *testing.T) {
	h := startHub(t, securedConfig(t))
	ctx, errs := openDashboard(t, h, "/healthz")
	cases := []struct {
		name, token, title, detail string
	}{
		{"no token", "", "needs a watcher token", "without a token"},
		{"wrong token", "not-a-token-of-this-hub", "did not accept", "invalid token"},
		{"too narrow", pumpsTok, "cannot read everything", "outside this watcher's scopes"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := "/"
			if c.token != "" {
				path += "?token=" + url.QueryEscape(c.token)
			}
			navigate(t, ctx, h, path)
			waitDOM(t, ctx, "the notice", `!document.querySelector('#notice').hidden`)
			notice := evalJS[map[string]string](t, ctx, `({
				title: document.querySelector('#notice-title').textContent,
				detail: document.querySelector('#notice-detail').textContent,
				hint: document.querySelector('#notice-hint').textContent,
				conn: document.querySelector('#conn-text').textContent,
			})`)
			for _, want := range [][2]string{{"title", c.title}, {"detail", c.detail}, {"hint", "?token="}, {"conn", "offline"}} {
				if !strings.Contains(notice[want[0]], want[1]) {
					t.Errorf("%s %q, want it to say %q", want[0], notice[want[0]], want[1])
				}
			}
			if strings.Contains(notice["conn"], "retry") {
				t.Errorf("connection badge %q: a refused token is not retried", notice["conn"])
			}
			if c.token == "" {
				screenshot(t, ctx, "dashboard-no-token.png")
			}
		})
	}

	t.Run("delete needs the admin token", func(t *testing.T) {
		d := dialDeviceWith(t, h, "pump-7", "", bearer(pumpTok))
		d.send(t, `{"type":"telemetry","seq":1,"values":{"temp":21.5}}`)
		d.next(t)
		navigate(t, ctx, h, "/?token="+url.QueryEscape(opsTok))
		waitDOM(t, ctx, "pump-7 selected", `document.querySelector('#detail-title').textContent === 'pump-7'`)
		confirmDelete(t, ctx)
		waitDOM(t, ctx, "the refusal", `document.querySelector('#delete-bar').dataset.state === 'refused'`)
		if msg := evalJS[string](t, ctx, `document.querySelector('#delete-text').textContent`); !strings.Contains(msg, "admin token") {
			t.Fatalf("refusal %q, want it to say the admin token is needed", msg)
		}
		if !evalJS[bool](t, ctx, `!!document.querySelector('tr[data-device="pump-7"]')`) {
			t.Fatal("pump-7 left the list although the hub refused to delete it")
		}
	})
	// The first page, /healthz, is not HTML: Chromium may ask for
	// /favicon.ico, which the hub does not serve.
	errs.check(t, "status of 401", "status of 403", "/favicon.ico")
}

// confirmDelete clicks Delete on the selected device and confirms.
func confirmDelete(t *testing.T, ctx context.Context) {
	t.Helper()
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`#delete`))); err != nil {
		t.Fatalf("click Delete: %v", err)
	}
	waitDOM(t, ctx, "the confirmation", `!document.querySelector('#delete-bar').hidden &&
		document.querySelector('#delete-bar').dataset.state === 'ask'`)
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`#delete-yes`))); err != nil {
		t.Fatalf("confirm: %v", err)
	}
}
