package devices

import "testing"

// TestMQTTOnBlockingReads runs the embedded broker's tests again with every
// connection read on a goroutine of its own (mochi's cl.Read), the path of
// TLS connections and of systems other than Unix; by default the tests'
// plain TCP connections are read by the direct reader (mqtt_direct.go).
// Both read paths are held to the same behaviour. Only this test sets
// mqttBlockingInTests; the tests do not run in parallel.
//
// The list holds every test of the mqtt*_test.go files that starts its
// broker through startMQTTBroker, except TestMQTTIdleClientGoroutines,
// which counts the direct reader's goroutines.
func TestMQTTOnBlockingReads(t *testing.T) {
	mqttBlockingInTests = true
	t.Cleanup(func() { mqttBlockingInTests = false })
	tests := []struct {
		name string
		test func(*testing.T)
	}{
		// mqtt_test.go
		{"TelemetryForms", TestBrokerTelemetryForms},
		{"QoS1AckAfterCommit", TestBrokerQoS1AckAfterCommit},
		{"QoS0DoesNotWait", TestBrokerQoS0DoesNotWait},
		{"Rejections", TestBrokerRejections},
		{"CommitFailureLeavesPublishUnacked", TestBrokerCommitFailureLeavesPublishUnacked},
		{"BadDeviceID", TestBrokerBadDeviceID},
		{"ForeignTopicsPassThrough", TestBrokerForeignTopicsPassThrough},
		{"OversizedPacketDropsConnection", TestBrokerOversizedPacketDropsConnection},
		{"Heartbeat", TestBrokerHeartbeat},
		{"PresenceWithoutCredentials", TestBrokerPresenceWithoutCredentials},
		{"WillOnDrop", TestBrokerWillOnDrop},
		{"DropWithoutWill", TestBrokerDropWithoutWill},
		{"StatusPublishes", TestBrokerStatusPublishes},
		{"TakeoverKeepsDeviceOnline", TestBrokerTakeoverKeepsDeviceOnline},
		{"Credentials", TestBrokerCredentials},
		{"PingCountsAsHeard", TestBrokerPingCountsAsHeard},
		{"ShutdownReleasesWaitingPublish", TestBrokerShutdownReleasesWaitingPublish},
		{"ShutdownWithSilentConnection", TestBrokerShutdownWithSilentConnection},
		{"ConnectTimeout", TestBrokerConnectTimeout},
		{"TLS", TestBrokerTLS},
		{"WithPresence", TestBrokerWithPresence},
		// mqtt_acks_test.go
		{"QoS1PublishesInFlightTogether", TestBrokerQoS1PublishesInFlightTogether},
		{"QoS1FailedCommitAmongOthers", TestBrokerQoS1FailedCommitAmongOthers},
		{"QoS1ReceiveMaximum", TestBrokerQoS1ReceiveMaximum},
		{"QoS1OtherAnswersKeepOrder", TestBrokerQoS1OtherAnswersKeepOrder},
		{"QoS1ForwardedPublish", TestBrokerQoS1ForwardedPublish},
		{"QoS1DisconnectWaitsForAcks", TestBrokerQoS1DisconnectWaitsForAcks},
		{"QoS1RefusedSubmissionAmongOthers", TestBrokerQoS1RefusedSubmissionAmongOthers},
		// mqtt_addr_cap_test.go
		{"PerAddressCap", TestBrokerPerAddressCap},
		{"PerAddressCapNotConnect", TestBrokerPerAddressCapNotConnect},
		// mqtt_attack_test.go
		{"ExhaustionAttack", TestBrokerExhaustionAttack},
		// mqtt_commands_test.go
		{"CommandConfirmedOnlyByTheDevicePuback", TestBrokerCommandConfirmedOnlyByTheDevicePuback},
		// mqtt_compat_test.go
		{"PubackOfPublishWithUserProperties", TestBrokerPubackOfPublishWithUserProperties},
		{"ResubscribeWithPacketIDInUseByBroker", TestBrokerResubscribeWithPacketIDInUseByBroker},
		{"EmptyRetainedPublishClears", TestBrokerEmptyRetainedPublishClears},
		{"PacketSizeLimit", TestBrokerPacketSizeLimit},
		{"MQTT5RefusalReasonCodes", TestBrokerMQTT5RefusalReasonCodes},
		{"ClientIDOfAnotherDevice", TestBrokerClientIDOfAnotherDevice},
		// mqtt_limits_test.go
		{"QueuedLimits", TestBrokerQueuedLimits},
		{"SessionExpiry", TestBrokerSessionExpiry},
		{"SubscriptionLimit", TestBrokerSubscriptionLimit},
		{"RetainedLimits", TestBrokerRetainedLimits},
		{"ClientAndSessionLimits", TestBrokerClientAndSessionLimits},
		{"NeverReadingSubscriber", TestBrokerNeverReadingSubscriber},
		// mqtt_log_test.go
		{"NeverLogsPassword", TestBrokerNeverLogsPassword},
		{"KeepaliveZeroIsNoWarning", TestBrokerKeepaliveZeroIsNoWarning},
		// mqtt_direct_test.go
		{"PacketsWithTheConnect", TestMQTTPacketsWithTheConnect},
		{"PacketsByteByByte", TestMQTTPacketsByteByByte},
		{"OversizedPacketCloses", TestMQTTOversizedPacketCloses},
		{"MalformedLengthCloses", TestMQTTMalformedLengthCloses},
		{"PacketCounters", TestMQTTPacketCounters},
		// mqtt_session_test.go
		{"SessionTakeover", TestMQTTSessionTakeover},
		{"DelayedWill", TestMQTTDelayedWill},
		{"DelayedWillOfResumedSession", TestMQTTDelayedWillOfResumedSession},
		{"DelayedWillMeetsReconnect", TestMQTTDelayedWillMeetsReconnect},
		{"SecondConnect", TestMQTTSecondConnect},
		{"WillTopicWithWildcardRefused", TestMQTTWillTopicWithWildcardRefused},
	}
	for _, tt := range tests {
		t.Run(tt.name, tt.test)
	}
}
