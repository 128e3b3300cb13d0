package storage

import (
	"os"
	"os/exec"
	"testing"
	"time"
)

// TestSuiteIgnoresTheRealClock runs this package's tests again with their
// clock (t0) years ahead of and years behind the real one. Retention by age
// and every other use of time must follow the injected clock: a test whose
// data meets the real clock fails in one of the two runs.
func TestSuiteIgnoresTheRealClock(t *testing.T) {
	if os.Getenv(epochEnv) != "" {
		t.Skip("already running at a moved clock")
	}
	if testing.Short() {
		t.Skip("runs the package's tests twice more")
	}
	now := time.Now()
	for _, epoch := range []time.Time{now.AddDate(30, 0, 0), now.AddDate(-30, 0, 0)} {
		t.Run(epoch.Format("2006"), func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run=^Test", "-test.count=1")
			cmd.Env = append(os.Environ(), epochEnv+"="+epoch.UTC().Format(time.RFC3339))
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("tests with the clock at %s: %v\n%s", epoch.Format(time.RFC3339), err, out)
			}
		})
	}
}
