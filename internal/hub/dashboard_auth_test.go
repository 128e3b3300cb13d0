package hub

import (
	"net/url"
	"strings"
	"testing"
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

	errs.check(t, "status of 401", "status of 403")
}
