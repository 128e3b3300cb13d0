package connlimit

import (
	"bufio"
	"net"
	"net/http"
	"strconv"
	"sync"

	"github.com/telehub/telehub/internal/httpx"
)

// RetryAfter is the Retry-After, in seconds, of a refused connection.
const RetryAfter = 5

// Limiter counts the connections it admits.
type Limiter struct {
	total, perAddr int

	mu     sync.Mutex
	n      int
	byAddr map[string]int
}

// New returns a Limiter of at most total connections, at most perAddr from
// one source address; 0 means no cap.
func New(total, perAddr int) *Limiter {
	return &Limiter{total: total, perAddr: perAddr, byAddr: map[string]int{}}
}

// Open reports how many connections are held.
func (l *Limiter) Open() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.n
}

// acquire takes a slot for addr; the returned release frees it once.
func (l *Limiter) acquire(addr string) (release func(), why string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case l.total > 0 && l.n >= l.total:
		return nil, "the hub is at its connection limit (" + strconv.Itoa(l.total) + ")"
	case l.perAddr > 0 && l.byAddr[addr] >= l.perAddr:
		return nil, "too many connections from " + addr + " (limit " + strconv.Itoa(l.perAddr) + ")"
	}
	l.n++
	l.byAddr[addr]++
	var once sync.Once
	return func() { once.Do(func() { l.release(addr) }) }, ""
}

func (l *Limiter) release(addr string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.n--
	if l.byAddr[addr]--; l.byAddr[addr] <= 0 {
		delete(l.byAddr, addr)
	}
}

// Wrap returns h admitting only the requests within the caps; a refused
// one is answered 503 with Retry-After and a JSON error.
func (l *Limiter) Wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		release, why := l.acquire(sourceAddr(r))
		if release == nil {
			w.Header().Set("Retry-After", strconv.Itoa(RetryAfter))
			httpx.Error(w, http.StatusServiceUnavailable, httpx.CodeUnavailable, why)
			return
		}
		hw := &holder{ResponseWriter: w, release: release}
		defer func() {
			if !hw.hijacked {
				release()
			}
		}()
		h.ServeHTTP(hw, r)
	})
}

// sourceAddr is the host of r's remote address.
func sourceAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// holder is a ResponseWriter whose hijacked connection keeps the slot
// until it is closed.
type holder struct {
	http.ResponseWriter
	release  func()
	hijacked bool
}

// Unwrap lets http.ResponseController reach the server's writer.
func (h *holder) Unwrap() http.ResponseWriter { return h.ResponseWriter }

// Hijack hands over the connection; closing it frees the slot.
func (h *holder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, rw, err := http.NewResponseController(h.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	h.hijacked = true
	return &heldConn{Conn: conn, release: h.release}, rw, nil
}

// heldConn frees its slot when closed.
type heldConn struct {
	net.Conn
	release func()
}

// Unwrap returns the connection itself, for writes that need the TCP
// connection; closing must go through c.
func (c *heldConn) Unwrap() net.Conn { return c.Conn }

func (c *heldConn) Close() error {
	err := c.Conn.Close()
	c.release()
	return err
}
