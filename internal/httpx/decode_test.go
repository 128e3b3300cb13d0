package httpx

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

type decodeTarget struct {
	Name   string   `json:"name"`
	Topics []string `json:"topics"`
	Limit  int      `json:"limit"`
}

func decode(body string) (decodeTarget, int, error) {
	var v decodeTarget
	r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(body))
	status, err := DecodeJSON(httptest.NewRecorder(), r, &v, 64)
	return v, status, err
}

func TestDecodeJSONAccepts(t *testing.T) {
	v, status, err := decode(` {"name":"ops","topics":["telemetry/#"],"limit":3} ` + "\n")
	if err != nil || status != 0 || v.Name != "ops" || len(v.Topics) != 1 || v.Limit != 3 {
		t.Fatalf("%+v %d %v", v, status, err)
	}
}

// Every body two readers could read differently is refused, and the
// message speaks JSON, not Go.
func TestDecodeJSONRefuses(t *testing.T) {
	cases := []struct {
		name, body string
		status     int
		want       string
	}{
		{"duplicate member", `{"topics":["telemetry/dev-a/#"],"topics":["#"]}`, 400, `member "topics" given twice`},
		{"duplicate in other case", `{"topics":["a"],"Topics":["#"]}`, 400, `unknown member "Topics"`},
		{"unknown member", `{"name":"x","admin":true}`, 400, `unknown member "admin"`},
		{"trailing data", `{"name":"x"} {"name":"y"}`, 400, "not valid JSON at byte"},
		{"wrong type", `{"name":5}`, 400, `member "/name" must be a string, not a number`},
		{"array for object", `[1]`, 400, "the body must be an object, not an array"},
		{"string for array", `{"topics":"#"}`, 400, `member "/topics" must be an array, not a string`},
		{"cut short", `{"name":`, 400, "not valid JSON"},
		{"empty", ``, 400, "empty: a JSON object is required"},
		{"too large", `{"name":"` + strings.Repeat("x", 100) + `"}`, 413, "larger than 64 bytes"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, status, err := decode(c.body)
			if err == nil || status != c.status || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("status %d, err %v; want %d and %q", status, err, c.status, c.want)
			}
			if strings.Contains(err.Error(), "httpx.") || strings.Contains(err.Error(), "Go ") {
				t.Fatalf("err %q names Go types", err)
			}
		})
	}
}

// A body DecodeJSON accepts is JSON any reader takes, with no member the
// target lacks, and a refusal is always a 400 or a 413.
func FuzzDecodeJSON(f *testing.F) {
	for _, s := range []string{`{"name":"ops","topics":["#"]}`, `{"topics":["a"],"topics":["#"]}`, `{"Name":"x"}`, `{"limit":1e3}`, `[]`, ``} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		v, status, err := decode(body)
		if err != nil {
			if status != 400 && status != 413 {
				t.Fatalf("status %d for %v", status, err)
			}
			return
		}
		var loose map[string]any
		if jerr := json.Unmarshal([]byte(body), &loose); jerr != nil {
			t.Fatalf("accepted %q, which encoding/json refuses: %v", body, jerr)
		}
		for k := range loose {
			if k != "name" && k != "topics" && k != "limit" {
				t.Fatalf("accepted unknown member %q in %q (%+v)", k, body, v)
			}
		}
	})
}
