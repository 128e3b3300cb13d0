package devices

import "testing"

// gwsReadsInTests makes the endpoints of newWSEnv read every connection
// with gws's ReadLoop, the path of TLS connections and of systems other
// than Unix; by default the tests' plain TCP connections are read by the
// direct reader. Only TestWSOnGWSReads sets it; the tests do not run in
// parallel.
var gwsReadsInTests bool

// TestWSOnGWSReads runs the endpoint's tests again on gws's read path, so
// that both read paths are held to the same behaviour.
func TestWSOnGWSReads(t *testing.T) {
	gwsReadsInTests = true
	t.Cleanup(func() { gwsReadsInTests = false })
	tests := []struct {
		name string
		test func(*testing.T)
	}{
		{"Acks", TestWSAcks},
		{"HeartbeatFrameIsNotAnswered", TestWSHeartbeatFrameIsNotAnswered},
		{"AnswersWaitForCommitInFrameOrder", TestWSAnswersWaitForCommitInFrameOrder},
		{"Rejections", TestWSRejections},
		{"LongErrorMessage", TestWSLongErrorMessage},
		{"CloseCodes", TestWSCloseCodes},
		{"ProtocolErrors", TestWSProtocolErrors},
		{"FramesInPieces", TestWSFramesInPieces},
		{"FramesWithTheHandshake", TestWSFramesWithTheHandshake},
		{"RefusedBeforeUpgrade", TestWSRefusedBeforeUpgrade},
		{"UpgradeRefusedByGWS", TestWSUpgradeRefusedByGWS},
		{"ReplacedConnection", TestWSReplacedConnection},
		{"LaterHandshakeReplaces", TestWSLaterHandshakeReplaces},
		{"Pings", TestWSPings},
		{"SilentDeviceTimesOut", TestWSSilentDeviceTimesOut},
		{"SilentDeviceTimeoutThenClose", TestWSSilentDeviceTimeoutThenClose},
		{"DeviceCloses", TestWSDeviceCloses},
		{"CloseEndsSessionBegunAfterTimeout", TestWSCloseEndsSessionBegunAfterTimeout},
		{"WriteFailureClosesConnection", TestWSWriteFailureClosesConnection},
		{"MaxInflight", TestWSMaxInflight},
		{"PanicClosesOnlyThatConnection", TestWSPanicClosesOnlyThatConnection},
		{"Shutdown", TestWSShutdown},
		{"ShutdownContextEnds", TestWSShutdownContextEnds},
		{"BlockedPresenceHoldsUpOnlyItsDevice", TestWSBlockedPresenceHoldsUpOnlyItsDevice},
	}
	for _, tt := range tests {
		t.Run(tt.name, tt.test)
	}
}
