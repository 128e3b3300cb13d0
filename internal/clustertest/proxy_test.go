package clustertest

import (
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// proxy stands in for a load balancer in front of the hubs: it forwards
// each TCP connection to the current target, and a failover is setTarget.
// Its goroutines (accept loop, two copies per connection) end with close.
type proxy struct {
	ln     net.Listener
	target atomic.Pointer[string]
	up     atomic.Int64 // bytes forwarded from clients to targets
	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	wg     sync.WaitGroup
}

// startProxy listens on a free loopback port and forwards to target
// (host:port) until the test ends.
func startProxy(t *testing.T, target string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, conns: map[net.Conn]struct{}{}}
	p.setTarget(target)
	p.wg.Go(p.accept)
	t.Cleanup(p.close)
	return p
}

// url is the proxy's HTTP base URL.
func (p *proxy) url() string { return "http://" + p.ln.Addr().String() }

// setTarget sends the connections accepted from now on to target.
func (p *proxy) setTarget(target string) { p.target.Store(&target) }

func (p *proxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.wg.Go(func() { p.forward(c) })
	}
}

// forward copies between c and a new connection to the target until
// either side ends, then closes both.
func (p *proxy) forward(c net.Conn) {
	up, err := net.DialTimeout("tcp", *p.target.Load(), 5*time.Second)
	if err != nil {
		_ = c.Close()
		return
	}
	if !p.track(c, up) {
		return
	}
	defer p.untrack(c, up)
	var once sync.Once
	closeBoth := func() { once.Do(func() { _ = c.Close(); _ = up.Close() }) }
	var copies sync.WaitGroup
	copies.Go(func() { _, _ = io.Copy(countingWriter{up, &p.up}, c); closeBoth() })
	copies.Go(func() { _, _ = io.Copy(c, up); closeBoth() })
	copies.Wait()
}

// upBytes returns the bytes forwarded from clients to targets so far.
func (p *proxy) upBytes() int64 { return p.up.Load() }

// countingWriter adds what it writes to n.
type countingWriter struct {
	w io.Writer
	n *atomic.Int64
}

func (c countingWriter) Write(b []byte) (int, error) {
	n, err := c.w.Write(b)
	c.n.Add(int64(n))
	return n, err
}

// track registers a connection pair; false (both closed) once the proxy
// is closing.
func (p *proxy) track(c, up net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.conns == nil {
		_ = c.Close()
		_ = up.Close()
		return false
	}
	p.conns[c], p.conns[up] = struct{}{}, struct{}{}
	return true
}

func (p *proxy) untrack(c, up net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.conns, c)
	delete(p.conns, up)
}

// close stops accepting, closes every connection and waits for the
// goroutines.
func (p *proxy) close() {
	_ = p.ln.Close()
	p.mu.Lock()
	for c := range p.conns {
		_ = c.Close()
	}
	p.conns = nil
	p.mu.Unlock()
	p.wg.Wait()
}
