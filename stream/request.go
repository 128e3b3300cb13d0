package stream

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/telehub/telehub/internal/topic"
)

// ErrBadRequest: a WebSocket watcher sent a message the hub cannot act on
// (bad JSON, unknown op, bad or missing topic filters). The hub answers it
// with an error message and keeps the connection.
var ErrBadRequest = errors.New("bad request")

// The ops of WebSocket watcher messages.
const (
	opSubscribe    = "subscribe"
	opUnsubscribe  = "unsubscribe"
	opSubscribed   = "subscribed"
	opUnsubscribed = "unsubscribed"
	opError        = "error"
)

// request is a parsed WebSocket watcher message.
type request struct {
	op      string         // opSubscribe or opUnsubscribe
	filters []topic.Filter // without repeats
	from    string         // resume id of a subscribe; "" for none
}

// wireRequest is the JSON form of a watcher message.
type wireRequest struct {
	Op          string   `json:"op"`
	Topics      []string `json:"topics"`
	LastEventID string   `json:"last_event_id"`
}

// parseRequest parses a watcher message: {"op":"subscribe","topics":[…],
// "last_event_id":"…"} or {"op":"unsubscribe","topics":[…]}, with one to
// limit topic filters. Errors wrap ErrBadRequest and say what is wrong.
func parseRequest(b []byte, limit int) (request, error) {
	var wr wireRequest
	if err := json.Unmarshal(b, &wr); err != nil {
		return request{}, fmt.Errorf("%w: invalid JSON: %v", ErrBadRequest, err)
	}
	if wr.Op != opSubscribe && wr.Op != opUnsubscribe {
		return request{}, fmt.Errorf("%w: unknown op %q", ErrBadRequest, wr.Op)
	}
	if len(wr.Topics) == 0 {
		return request{}, fmt.Errorf("%w: %s needs at least one topic", ErrBadRequest, wr.Op)
	}
	filters, err := parseFilters(wr.Topics, limit)
	if err != nil {
		return request{}, fmt.Errorf("%w: %v", ErrBadRequest, err)
	}
	return request{op: wr.Op, filters: filters, from: wr.LastEventID}, nil
}

// filterStrings returns the filters as strings.
func filterStrings(fs []topic.Filter) []string {
	out := make([]string, len(fs))
	for i, f := range fs {
		out[i] = f.String()
	}
	return out
}
