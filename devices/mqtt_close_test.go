package devices

import (
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
)

// mochi's Clients.GetByListener takes the clients' read lock twice, and a
// client added or removed in between deadlocks it: the broker's close
// hung so when a client connected or disconnected meanwhile. The close
// disconnects its clients without it, however clients come and go.
func TestDisconnectListenerClientsWhileClientsComeAndGo(t *testing.T) {
	server := mqtt.New(&mqtt.Options{Logger: mqttDiscardLogger()})
	stop, churned := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(churned)
		cl := server.NewClient(nil, "telehub", "churn", false)
		for {
			select {
			case <-stop:
				return
			default:
			}
			server.Clients.Add(cl)
			server.Clients.Delete(cl.ID)
		}
	}()
	closed := make(chan struct{})
	go func() {
		defer close(closed)
		for range 200000 {
			disconnectListenerClients(server, "telehub")
		}
	}()
	select {
	case <-closed:
	case <-time.After(3 * waitGuard):
		t.Fatal("disconnecting the clients deadlocked with a client coming or going")
	}
	close(stop)
	<-churned
}
