package bridge

// ValidDeviceID reports whether id is a valid device id (SPEC §2).
func ValidDeviceID(id string) error {
	if !validName(id) {
		return Errorf("device id %q: invalid name", id)
	}
	return nil
}

// ValidMetric reports whether name is a valid metric name (SPEC §2).
func ValidMetric(name string) error {
	if !validName(name) {
		return Errorf("metric %q: invalid name", name)
	}
	return nil
}

func validName(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || i > 0 && (c == '.' || c == '_' || c == '-')) {
			return false
		}
	}
	return true
}
