package stream

import (
	"errors"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// sseSink writes to an SSE response. It starts on net/http's response
// writer; hijack takes the connection over, after which the sink writes
// the HTTP/1.1 response itself (chunked, as net/http would) and holds no
// buffer of net/http's while the watcher is idle.
type sseSink struct {
	w       http.ResponseWriter // nil once hijacked
	rc      *http.ResponseController
	timeout time.Duration
	buf     []byte // concatenation of a multi-buffer write

	mu     sync.Mutex // guards conn and cutOff: cut runs on other goroutines
	conn   net.Conn   // the hijacked connection
	tcp    net.Conn   // conn's TCP connection, for vectored writes; nil on TLS
	cutOff bool       // cut ran

	head []byte      // the response head, written by open once hijacked
	vec  net.Buffers // the next chunk: size line, bufs, CRLF
	size []byte      // the chunk size line
}

var (
	crlf     = []byte("\r\n")
	lastSSE  = []byte("0\r\n\r\n")
	longAgo  = time.Unix(1, 0)
	sseProto = "HTTP/1.1 200 OK\r\n"
)

// hijack takes the connection over from net/http, keeping the response
// head to write in open. It reports false, leaving the response to
// net/http, where the connection cannot be taken (HTTP/2).
func (s *sseSink) hijack() bool {
	s.setHeaders()
	head := append([]byte(sseProto), "Date: "+time.Now().UTC().Format(http.TimeFormat)+"\r\n"...)
	hd := s.w.Header().Clone()
	hd.Set("Transfer-Encoding", "chunked")
	hd.Set("Connection", "close")
	conn, _, err := s.rc.Hijack()
	if err != nil {
		return false
	}
	s.head = appendHeader(head, hd)
	s.tcp = tcpConn(conn)
	s.mu.Lock()
	s.conn, s.w, s.rc = conn, nil, nil
	cut := s.cutOff
	s.mu.Unlock()
	if cut { // Hijack cleared the deadline cut had set
		_ = conn.SetWriteDeadline(longAgo)
	}
	return true
}

// tcpConn returns the TCP connection under conn, unwrapping connections
// that wrap it (a connection cap's slot holder), or nil.
func tcpConn(conn net.Conn) net.Conn {
	for {
		switch c := conn.(type) {
		case *net.TCPConn:
			return c
		case interface{ Unwrap() net.Conn }:
			conn = c.Unwrap()
		default:
			return nil
		}
	}
}

// appendHeader appends hd and the blank line that ends the head.
func appendHeader(b []byte, hd http.Header) []byte {
	w := headerBuffer{b}
	_ = hd.Write(&w)
	return append(w.b, crlf...)
}

type headerBuffer struct{ b []byte }

func (w *headerBuffer) Write(p []byte) (int, error) {
	w.b = append(w.b, p...)
	return len(p), nil
}

func (s *sseSink) setHeaders() {
	hd := s.w.Header()
	hd.Set("Content-Type", "text/event-stream")
	hd.Set("Cache-Control", "no-cache")
	hd.Set("X-Accel-Buffering", "no")
}

// open sends the headers and the retry line, flushed at once.
func (s *sseSink) open() error {
	if s.w == nil {
		head := s.head
		s.head = nil
		return s.writeChunk(head, [][]byte{sseRetry})
	}
	s.setHeaders()
	s.w.WriteHeader(http.StatusOK)
	return s.write([][]byte{sseRetry})
}

// write writes bufs as one Write and one Flush under the write deadline.
func (s *sseSink) write(bufs [][]byte) error {
	if s.w == nil {
		return s.writeChunk(nil, bufs)
	}
	if err := s.deadline(time.Now().Add(s.timeout)); err != nil {
		return err
	}
	_, err := s.w.Write(s.join(bufs))
	if err != nil {
		return err
	}
	return s.rc.Flush()
}

// join returns bufs as one slice, in s.buf when there are several.
func (s *sseSink) join(bufs [][]byte) []byte {
	if len(bufs) == 1 {
		return bufs[0]
	}
	s.buf = s.buf[:0]
	for _, p := range bufs {
		s.buf = append(s.buf, p...)
	}
	return s.buf
}

// writeChunk writes prefix (the response head, or nothing) and bufs as one
// chunk of the body, in one write under the write deadline: a vectored
// write on TCP, one buffer on other connections (TLS).
func (s *sseSink) writeChunk(prefix []byte, bufs [][]byte) error {
	if err := s.conn.SetWriteDeadline(time.Now().Add(s.timeout)); err != nil {
		return err
	}
	n := 0
	for _, p := range bufs {
		n += len(p)
	}
	s.size = appendChunkSize(s.size[:0], n)
	s.vec = append(s.vec[:0], prefix, s.size)
	s.vec = append(s.vec, bufs...)
	s.vec = append(s.vec, crlf)
	var err error
	if s.tcp != nil {
		v := s.vec
		_, err = v.WriteTo(s.tcp)
	} else {
		_, err = s.conn.Write(s.join(s.vec))
	}
	s.release()
	return err
}

// appendChunkSize appends the size line of a chunk of n bytes.
func appendChunkSize(b []byte, n int) []byte {
	return append(strconv.AppendInt(b, int64(n), 16), crlf...)
}

// release drops the references of the last write and the buffers an idle
// watcher should not keep.
func (s *sseSink) release() {
	clear(s.vec)
	s.vec = s.vec[:0]
	if cap(s.vec) > keepFrames {
		s.vec = nil
	}
	s.buf = s.buf[:0]
	if cap(s.buf) > keepBytes {
		s.buf = nil
	}
}

// direct returns the connection for the fan-out goroutine's non-blocking
// writes: only a hijacked plain TCP connection takes them.
func (s *sseSink) direct() *directConn {
	tcp, ok := s.tcp.(*net.TCPConn)
	if s.w != nil || !ok {
		return nil
	}
	if tw := newSocketWriter(tcp); tw != nil {
		return &directConn{tryWriter: tw, chunked: true}
	}
	return nil
}

// writeRaw writes b, bytes already framed for the connection, under the
// write deadline. Only a hijacked connection gets such bytes (direct).
func (s *sseSink) writeRaw(b []byte) error {
	if err := s.conn.SetWriteDeadline(time.Now().Add(s.timeout)); err != nil {
		return err
	}
	_, err := s.conn.Write(b)
	return err
}

// deadline sets the write deadline, where the server supports one.
func (s *sseSink) deadline(t time.Time) error {
	err := s.rc.SetWriteDeadline(t)
	if errors.Is(err, http.ErrNotSupported) {
		return nil
	}
	return err
}

// finish ends the stream. A watcher that is too slow, whose write failed,
// or that was aborted is cut off: its connection is closed. Otherwise the
// end of the chunked body is written under one more write timeout (by
// net/http when the connection is its own).
func (s *sseSink) finish(e end, aborted bool) {
	clean := e != endSlow && e != endError && !aborted
	if s.w == nil {
		if clean {
			_ = s.conn.SetWriteDeadline(time.Now().Add(s.timeout))
			_, _ = s.conn.Write(lastSSE)
		}
		_ = s.conn.Close()
		return
	}
	if clean {
		_ = s.deadline(time.Now().Add(s.timeout))
		return
	}
	s.cut()
	if conn, _, err := s.rc.Hijack(); err == nil {
		_ = conn.Close()
	}
}

// drop closes a hijacked connection whose stream did not open.
func (s *sseSink) drop() {
	if s.w == nil {
		_ = s.conn.Close()
	}
}

// cut makes a write in progress, and every later one, fail at once.
func (s *sseSink) cut() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cutOff = true
	if s.conn != nil {
		_ = s.conn.SetWriteDeadline(longAgo)
		return
	}
	_ = s.deadline(longAgo)
}
