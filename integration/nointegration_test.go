//go:build !integration

package integration

import (
	"fmt"
	"os"
	"testing"

	"go.uber.org/goleak"
)

func runMain(m *testing.M) int {
	code := m.Run()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	return code
}
