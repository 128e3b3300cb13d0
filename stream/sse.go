package stream

import (
	"net"
	"net/http"

	"github.com/telehub/telehub/internal/httpx"
)

// ServeSSE serves GET /v1/stream: the events matching the repeated topic
// query parameters (default "#") as Server-Sent Events, resuming after the
// Last-Event-ID header or the last_event_id query parameter when given. An
// invalid filter gets 400 before any stream bytes; a hub shutting down
// gets 503. With Config.Authorize, a refused request gets 401 and a
// filter it does not allow 403, both before the stream. The stream ends cleanly (so browsers reconnect) on Shutdown
// and when Recheck finds its credential revoked, and ends when the client
// cannot keep up or a write fails.
func (h *Hub) ServeSSE(w http.ResponseWriter, r *http.Request) {
	allow, ok := h.authorize(w, r)
	if !ok {
		return
	}
	q := r.URL.Query()
	if problem := httpx.TopicQueryProblem(q["topic"]); problem != "" {
		httpx.Error(w, http.StatusBadRequest, httpx.CodeBadRequest, problem)
		return
	}
	filters, err := parseFilters(q["topic"], h.cfg.MaxFilters)
	if err != nil {
		httpx.Error(w, http.StatusBadRequest, httpx.CodeBadRequest, err.Error())
		return
	}
	if err := allowed(allow, filters); err != nil {
		httpx.Forbidden(w, err.Error())
		return
	}
	from := r.Header.Get("Last-Event-ID")
	if from == "" {
		from = q.Get("last_event_id")
	}
	s := &sseSink{w: w, rc: http.NewResponseController(w), timeout: h.cfg.WriteTimeout}
	wt := newWatcher(formatSSE, s.cut)
	wt.valid = h.recheckOf(r)
	if err := h.register(wt, filters, from, from != "", 1); err != nil {
		httpx.Error(w, http.StatusServiceUnavailable, httpx.CodeUnavailable, err.Error())
		return
	}
	if r.ProtoAtLeast(1, 1) && s.hijack() {
		// The connection is the watcher's own from here: the handler
		// returns, and with it net/http's buffers for the connection. The
		// stream opens on the handler's goroutine, so the watcher's own
		// starts, and stays while idle, on the smallest stack.
		if h.openSSE(s, r.RemoteAddr) {
			wt.setDirect(s.direct())
			go h.serveSSEConn(wt, s, r.RemoteAddr)
			return
		}
		s.drop()
		h.unregister(wt)
		h.wg.Done()
		return
	}
	defer h.wg.Done()
	defer h.unregister(wt)
	if h.openSSE(s, r.RemoteAddr) {
		h.streamSSE(wt, s, r.RemoteAddr, r.Context().Done())
	}
}

// openSSE sends the response head and the retry line.
func (h *Hub) openSSE(s *sseSink, remote string) bool {
	err := s.open()
	if err != nil {
		h.log.Debug("sse stream not opened", "remote", remote, "err", err)
	}
	return err == nil
}

// streamSSE runs the watcher's writer loop until gone is closed or the
// stream ends, and finishes the stream.
func (h *Hub) streamSSE(wt *watcher, s *sseSink, remote string, gone <-chan struct{}) {
	e, err := h.serve(wt, s, gone)
	h.logEnd(transportSSE, remote, e, err)
	s.finish(e, wt.aborted.Load())
}

// logEnd logs why a watcher's stream ended.
func (h *Hub) logEnd(transport, remote string, e end, err error) {
	switch e {
	case endSlow:
		h.log.Warn("watcher disconnected: not keeping up", "transport", transport, "remote", remote)
	case endError:
		h.log.Debug("watcher stream failed", "transport", transport, "remote", remote, "err", err)
	case endRevoked:
		h.log.Info("watcher disconnected: credential revoked", "transport", transport, "remote", remote)
	}
}

// serveSSEConn streams to a watcher whose connection was hijacked, on a
// goroutine of its own (register counted it). A reader notices the client
// going away; it ends when the connection is closed.
func (h *Hub) serveSSEConn(wt *watcher, s *sseSink, remote string) {
	defer h.wg.Done()
	defer h.unregister(wt)
	gone := make(chan struct{})
	go func() {
		defer close(gone)
		discard(s.conn)
	}()
	h.streamSSE(wt, s, remote, gone)
	<-gone // streamSSE closed the connection
}

// discard reads and drops what the client sends until the connection fails
// or closes.
func discard(conn net.Conn) {
	var b [64]byte
	for {
		if _, err := conn.Read(b[:]); err != nil {
			return
		}
	}
}
