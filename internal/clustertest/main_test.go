package clustertest

import (
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// binDir holds the binaries built for this test binary.
var binDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "telehub-clustertest-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "clustertest:", err)
		os.Exit(1)
	}
	binDir = dir
	code := m.Run()
	_ = os.RemoveAll(dir)
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// build is one binary built at most once per test binary.
type build struct {
	once sync.Once
	path string
	err  error
}

var builds sync.Map // package path → *build

// binary builds the command of package pkg (a path inside the module,
// like "cmd/telehub") once, and returns the binary's path.
func binary(t *testing.T, pkg string) string {
	t.Helper()
	v, _ := builds.LoadOrStore(pkg, &build{})
	b := v.(*build)
	b.once.Do(func() {
		b.path = filepath.Join(binDir, path.Base(pkg))
		out, err := exec.Command("go", "build", "-o", b.path, "github.com/telehub/telehub/"+pkg).CombinedOutput()
		if err != nil {
			b.err = fmt.Errorf("go build %s: %w\n%s", pkg, err, out)
		}
	})
	if b.err != nil {
		t.Fatal(b.err)
	}
	return b.path
}

// waitGuard bounds every wait for a condition: generous, since the box
// may be busy; a wait that passes it fails the test.
const waitGuard = 60 * time.Second

// waitFor polls cond until it holds, failing the test after waitGuard.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitGuard)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", waitGuard, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitUntil polls check until it returns "", failing the test after
// waitGuard with the last thing it returned: what is still wrong.
func waitUntil(t *testing.T, what string, check func() string) {
	t.Helper()
	deadline := time.Now().Add(waitGuard)
	for {
		problem := check()
		if problem == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s: %s", waitGuard, what, problem)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
