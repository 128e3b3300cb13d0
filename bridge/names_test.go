package bridge

import (
	"errors"
	"testing"
)

func TestNameErrorsAreBadRequest(t *testing.T) {
	for _, err := range []error{validDeviceID("a/b"), validMetric("")} {
		var e *Error
		if !errors.As(err, &e) || e.Code != CodeBadRequest || e.Message == "" {
			t.Errorf("err = %#v, want *Error with %s", err, CodeBadRequest)
		}
	}
	if validDeviceID("d1") != nil || validMetric("temp") != nil {
		t.Error("valid names refused")
	}
}
