package setting

import (
	"os"
	"strings"
	"testing"
)

// TestMain runs the tests without the caller's GOWS_ variables: Load reads
// (and refuses unknown) ones, and each test sets those it needs.
func TestMain(m *testing.M) {
	for _, kv := range os.Environ() {
		if name, _, _ := strings.Cut(kv, "="); strings.HasPrefix(strings.ToUpper(name), EnvPrefix+"_") {
			_ = os.Unsetenv(name)
		}
	}
	os.Exit(m.Run())
}
