package integration

import (
	"os"
	"testing"
)

// TestMain delegates to runMain: the integration build runs the harness
// (harness_test.go), the default build only the helpers' unit tests.
func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}
