package httpx

import (
	"fmt"
	"strings"
)

// TopicQueryProblem says what is wrong with the topic filters of a URL
// query (?topic=…) when their shape shows a URL-encoding mistake, or ""
// when there is none. A '#' left unencoded starts the URL's fragment, which
// clients do not send: ?topic=telemetry/# reaches the hub as "telemetry/",
// and ?topic=# as "". A '+' left unencoded reads as a space. Every topic of
// the hub has non-empty levels without spaces, so such a filter could never
// match anything: it is refused with the fix rather than answered empty.
func TopicQueryProblem(topics []string) string {
	for _, t := range topics {
		switch {
		case t == "":
			return `empty topic filter: a "#" must be written %23 in a URL (an unencoded # starts the URL fragment, which is not sent): topic=%23`
		case strings.HasSuffix(t, "/"):
			return fmt.Sprintf(`topic filter %q ends in "/": write "#" as %%23 in a URL (an unencoded # starts the URL fragment, which is not sent): topic=%s%%23`, t, t)
		case strings.Contains(t, " "):
			return fmt.Sprintf(`topic filter %q holds a space: write "+" as %%2B in a URL (an unencoded + reads as a space): topic=%s`, t, strings.ReplaceAll(t, " ", "%2B"))
		}
	}
	return ""
}
