package hub

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lxzan/gws"

	"github.com/telehub/telehub/storage"
)

// durableOrder is storage's Synced hook of a hub under test: it knows the
// last event id whose commit's fsync returned, and checks each ack and
// each watcher frame against it at the moment the client receives it. An
// ack or frame is written after the commit it depends on became durable,
// and received after it was written; so an ack or frame that arrives while
// its commit is not yet durable was written before the fsync returned.
type durableOrder struct {
	ids    storage.IDCodec
	synced atomic.Uint64 // last id made durable

	mu    sync.Mutex
	acked map[string]uint64 // "transport seq" → durable id when its ack arrived
	seen  map[string]int    // watcher → telemetry frames received
	early []string          // frames received before their commit was durable
}

func newDurableOrder() *durableOrder {
	return &durableOrder{acked: make(map[string]uint64), seen: make(map[string]int)}
}

// ack notes the ack of the reading with seq over transport.
func (o *durableOrder) ack(transport string, seq int) {
	durable := o.synced.Load()
	o.mu.Lock()
	defer o.mu.Unlock()
	o.acked[fmt.Sprintf("%s %d", transport, seq)] = durable
}

// frame checks a telemetry event frame with id received by watcher.
func (o *durableOrder) frame(watcher, id string) {
	durable := o.synced.Load()
	n, err := o.ids.Parse(id)
	o.mu.Lock()
	defer o.mu.Unlock()
	o.seen[watcher]++
	switch {
	case err != nil:
		o.early = append(o.early, fmt.Sprintf("%s: bad id %q: %v", watcher, id, err))
	case n > durable:
		o.early = append(o.early, fmt.Sprintf("%s: event %d delivered while only %d was durable", watcher, n, durable))
	}
}

func (o *durableOrder) frames(watcher string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.seen[watcher]
}

// TestAcksAndDeliveriesFollowFsync sends readings one at a time over
// WebSocket and over MQTT QoS 1 to a hub with fsync on, with an SSE and a
// WebSocket watcher open, and checks that every WebSocket ack, every
// PUBACK and every frame of both watchers arrived after the fsync of the
// commit holding its reading had returned. Each reading is alone in its
// commit, so a hub that wrote an ack or a frame before the fsync would be
// caught in the fsync's time (a disk flush) on nearly every reading.
func TestAcksAndDeliveriesFollowFsync(t *testing.T) {
	const readings = 40
	o := newDurableOrder()
	cfg := testConfig(t)
	cfg.Fsync = true
	h, err := newHub(cfg, testLogger(t), o.synced.Store)
	if err != nil {
		t.Fatalf("newHub: %v", err)
	}
	if err := h.Start(context.Background()); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { stopHub(t, h) })
	o.ids = h.store.IDs()

	watchOrderSSE(t, h, o)
	watchOrderWS(t, h, o)
	sendOrderWS(t, h, o, "ws-dev", readings)
	sendOrderMQTT(t, h, o, "mq-dev", readings)
	for _, w := range []string{"sse", "ws"} {
		waitFor(t, w+" watcher frames", func() bool { return o.frames(w) == 2*readings })
	}

	o.mu.Lock()
	defer o.mu.Unlock()
	for _, e := range o.early {
		t.Error(e)
	}
	for transport, device := range map[string]string{"ws": "ws-dev", "mqtt": "mq-dev"} {
		evs := events(t, h, "telemetry/"+device+"/temp")
		if len(evs) != readings {
			t.Fatalf("%s: %d events stored, want %d", device, len(evs), readings)
		}
		for _, ev := range evs {
			id, err := o.ids.Parse(ev.ID)
			if err != nil {
				t.Fatal(err)
			}
			seq := int(ev.Data["device_seq"].(float64))
			if durable := o.acked[fmt.Sprintf("%s %d", transport, seq)]; durable < id {
				t.Errorf("%s ack of seq %d (event %d) arrived while only %d was durable", transport, seq, id, durable)
			}
		}
	}
}

// watchOrderSSE opens an SSE watcher of telemetry/# that checks each frame.
func watchOrderSSE(t *testing.T, h *Hub, o *durableOrder) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+h.HTTPAddr()+"/v1/stream?topic=telemetry/%23", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		cancel()
		t.Fatalf("open SSE: %v %v", resp, err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		r := bufio.NewReader(resp.Body)
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			if id, ok := strings.CutPrefix(strings.TrimSuffix(line, "\n"), "id: "); ok {
				o.frame("sse", id)
			}
		}
	}()
	t.Cleanup(func() {
		cancel()
		_ = resp.Body.Close()
		<-done
	})
}

// orderWatcher is a WebSocket watcher that checks each frame.
type orderWatcher struct {
	gws.BuiltinEventHandler
	o          *durableOrder
	subscribed chan struct{}
}

func (w *orderWatcher) OnMessage(_ *gws.Conn, m *gws.Message) {
	defer m.Close()
	var msg struct{ Op, ID, Event string }
	if err := json.Unmarshal(m.Bytes(), &msg); err != nil {
		return
	}
	switch msg.Op {
	case "subscribed":
		close(w.subscribed)
	case "event":
		w.o.frame("ws", msg.ID)
	}
}

// watchOrderWS opens a WebSocket watcher of telemetry/#.
func watchOrderWS(t *testing.T, h *Hub, o *durableOrder) {
	t.Helper()
	w := &orderWatcher{o: o, subscribed: make(chan struct{})}
	conn, resp, err := gws.NewClient(w, &gws.ClientOption{Addr: "ws://" + h.HTTPAddr() + "/v1/stream/ws"})
	if err != nil {
		t.Fatalf("dial watcher: %v", err)
	}
	_ = resp.Body.Close()
	done := make(chan struct{})
	go func() { defer close(done); conn.ReadLoop() }()
	t.Cleanup(func() {
		_ = conn.WriteClose(1000, nil)
		<-done
	})
	if err := conn.WriteString(`{"op":"subscribe","topics":["telemetry/#"]}`); err != nil {
		t.Fatal(err)
	}
	select {
	case <-w.subscribed:
	case <-time.After(10 * time.Second):
		t.Fatal("watcher not subscribed within 10s")
	}
}

// orderDevice is a WebSocket device that notes each ack as it arrives.
type orderDevice struct {
	gws.BuiltinEventHandler
	o    *durableOrder
	acks chan int
}

func (d *orderDevice) OnMessage(_ *gws.Conn, m *gws.Message) {
	defer m.Close()
	var msg struct {
		Type string
		Seq  int
	}
	if json.Unmarshal(m.Bytes(), &msg) == nil && msg.Type == "ack" {
		d.o.ack("ws", msg.Seq)
		d.acks <- msg.Seq
	}
}

// sendOrderWS sends n readings from a WebSocket device, each after the
// previous one's ack.
func sendOrderWS(t *testing.T, h *Hub, o *durableOrder, id string, n int) {
	t.Helper()
	d := &orderDevice{o: o, acks: make(chan int, 1)}
	conn, resp, err := gws.NewClient(d, &gws.ClientOption{Addr: "ws://" + h.HTTPAddr() + "/v1/devices/" + id + "/ws"})
	if err != nil {
		t.Fatalf("dial device: %v", err)
	}
	_ = resp.Body.Close()
	done := make(chan struct{})
	go func() { defer close(done); conn.ReadLoop() }()
	defer func() {
		_ = conn.WriteClose(1000, nil)
		<-done
	}()
	for seq := 1; seq <= n; seq++ {
		if err := conn.WriteString(fmt.Sprintf(`{"type":"telemetry","seq":%d,"values":{"temp":%d}}`, seq, seq)); err != nil {
			t.Fatal(err)
		}
		select {
		case got := <-d.acks:
			if got != seq {
				t.Fatalf("ack of seq %d, want %d", got, seq)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("no ack of seq %d within 10s", seq)
		}
	}
}

// sendOrderMQTT publishes n readings at QoS 1 from an MQTT device, each
// after the previous one's PUBACK.
func sendOrderMQTT(t *testing.T, h *Hub, o *durableOrder, id string, n int) {
	t.Helper()
	c := mqttClient(t, h, id, nil)
	for seq := 1; seq <= n; seq++ {
		tok := c.Publish("devices/"+id+"/telemetry", 1, false, fmt.Sprintf(`{"seq":%d,"temp":%d}`, seq, seq))
		if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("publish seq %d: %v", seq, tok.Error())
		}
		o.ack("mqtt", seq)
	}
}
