package topic

// Roots of the normalized topics events are published on.
const (
	TelemetryRoot = "telemetry/"
	PresenceRoot  = "presence/"
	ErrorsRoot    = "errors/"
	CommandsRoot  = "commands/"
)

// Telemetry returns "telemetry/{device}/{metric}", the topic of one metric's
// readings. Both names must already be valid.
func Telemetry(device, metric string) string { return TelemetryRoot + device + "/" + metric }

// Presence returns "presence/{device}", the topic of the device's online and
// offline changes. device must already be valid.
func Presence(device string) string { return PresenceRoot + device }

// Errors returns "errors/{device}", the topic of the device's rejected
// payloads. device must already be valid.
func Errors(device string) string { return ErrorsRoot + device }

// Commands returns "commands/{device}", the topic of the state changes of
// commands sent to the device. device must already be valid.
func Commands(device string) string { return CommandsRoot + device }
