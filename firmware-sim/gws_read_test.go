package firmwaresim

import (
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/lxzan/gws"
)

// closeRecorder is a gws handler that reports how its connection ended.
type closeRecorder struct {
	gws.BuiltinEventHandler
	closed chan error
}

func (r *closeRecorder) OnClose(_ *gws.Conn, err error) { r.closed <- err }

// A server that answers the handshake and then sends a frame whose 64-bit
// length has its top bit set (gws panics reading it) ends that connection
// with an error; the simulator goes on.
func TestReadLoopSurvivesFrameOfNegativeLength(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sum := sha1.Sum([]byte(r.Header.Get("Sec-WebSocket-Key") + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
		conn, rw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Errorf("hijack: %v", err)
			return
		}
		defer conn.Close()
		_, _ = rw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
			"Sec-WebSocket-Accept: " + base64.StdEncoding.EncodeToString(sum[:]) + "\r\n\r\n")
		_, _ = rw.Write(binary.BigEndian.AppendUint64([]byte{0x81, 0x7F}, 1<<63))
		_ = rw.Flush()
		// Until the client closes, with a guard.
		_ = conn.SetReadDeadline(time.Now().Add(30 * time.Second))
		_, _ = conn.Read(make([]byte, 1))
	}))
	defer srv.Close()
	h := &closeRecorder{closed: make(chan error, 1)}
	conn, _, err := gws.NewClient(h, &gws.ClientOption{Addr: "ws" + strings.TrimPrefix(srv.URL, "http")})
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	readLoop(conn, h)
	select {
	case err := <-h.closed:
		if err == nil || !strings.Contains(err.Error(), "cannot be read") {
			t.Fatalf("connection ended with %v, want the unreadable frame", err)
		}
	default:
		t.Fatal("the handler was not told the connection ended")
	}
}
