// Package hostname owns the syntax of DNS host names as handoff accepts
// them in target addresses, route host patterns and listen addresses: RFC
// 1123 §2.1 labels, with '_' allowed because it occurs in real names.
//
// It must not know where a name comes from or resolve it.
package hostname

import (
	"fmt"
	"strings"
)

// Check reports why name is not a valid host name, or nil. A trailing
// dot (a fully qualified name) is allowed.
func Check(name string) error {
	n := strings.TrimSuffix(name, ".")
	if n == "" {
		return fmt.Errorf("%q: empty host name", name)
	}
	if len(n) > 253 {
		return fmt.Errorf("%q: host name longer than 253 bytes", name)
	}
	for label := range strings.SplitSeq(n, ".") {
		if label == "" || len(label) > 63 {
			return fmt.Errorf("%q: each label must have 1 to 63 characters", name)
		}
		if label[0] == '-' || label[len(label)-1] == '-' {
			return fmt.Errorf("%q: a label must not start or end with '-'", name)
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
				return fmt.Errorf("%q: %q is not allowed in a host name", name, r)
			}
		}
	}
	return nil
}
