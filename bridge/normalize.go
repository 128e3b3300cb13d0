package bridge

// ParseTelemetry parses a devices/{id}/telemetry payload.
func ParseTelemetry(payload []byte) (Payload, error) { return Payload{}, Errorf("bad payload") }

// ParsePlain parses a devices/{id}/telemetry/{metric} payload.
func ParsePlain(metric string, payload []byte) (Payload, error) { return Payload{}, Errorf("bad payload") }
