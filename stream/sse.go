package stream

import (
	"errors"
	"net/http"
	"time"

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
	defer h.wg.Done()
	defer h.unregister(wt)
	if err := s.open(); err != nil {
		h.log.Debug("sse stream not opened", "remote", r.RemoteAddr, "err", err)
		return
	}
	e, err := h.serve(wt, s, r.Context().Done())
	h.logEnd(transportSSE, r.RemoteAddr, e, err)
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

// sseSink writes to an SSE response.
type sseSink struct {
	w       http.ResponseWriter
	rc      *http.ResponseController
	timeout time.Duration
	buf     []byte // concatenation of a multi-buffer write
}

// open sends the headers and the retry line, flushed at once.
func (s *sseSink) open() error {
	hd := s.w.Header()
	hd.Set("Content-Type", "text/event-stream")
	hd.Set("Cache-Control", "no-cache")
	hd.Set("X-Accel-Buffering", "no")
	s.w.WriteHeader(http.StatusOK)
	return s.write([][]byte{sseRetry})
}

// write writes bufs as one Write and one Flush under the write deadline.
func (s *sseSink) write(bufs [][]byte) error {
	if err := s.deadline(time.Now().Add(s.timeout)); err != nil {
		return err
	}
	b := bufs[0]
	if len(bufs) > 1 {
		for _, p := range bufs {
			s.buf = append(s.buf, p...)
		}
		b = s.buf
	}
	_, err := s.w.Write(b)
	s.buf = s.buf[:0]
	if cap(s.buf) > keepBytes {
		s.buf = nil
	}
	if err != nil {
		return err
	}
	return s.rc.Flush()
}

// deadline sets the write deadline, where the server supports one.
func (s *sseSink) deadline(t time.Time) error {
	err := s.rc.SetWriteDeadline(t)
	if errors.Is(err, http.ErrNotSupported) {
		return nil
	}
	return err
}

// finish prepares the connection for the end of the response. A watcher
// that is too slow, whose write failed, or that was aborted is cut off: its
// connection is closed. Otherwise the server's last write (the end of the
// chunked body) gets one more write timeout.
func (s *sseSink) finish(e end, aborted bool) {
	if e != endSlow && e != endError && !aborted {
		_ = s.deadline(time.Now().Add(s.timeout))
		return
	}
	s.cut()
	if conn, _, err := s.rc.Hijack(); err == nil {
		_ = conn.Close()
	}
}

// cut makes a write in progress, and every later one, fail at once.
func (s *sseSink) cut() { _ = s.deadline(time.Unix(1, 0)) }
