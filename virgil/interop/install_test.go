package interop_test

import (
	"strings"
	"testing"

	"github.com/groupsync/groupsync/virgil/interop"
)

// TestEnsureInstalledNamesMissingNode checks that a machine without Node.js
// gets a failure that says what to install, not a silent skip.
func TestEnsureInstalledNamesMissingNode(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	err := interop.EnsureInstalled(t.TempDir())
	if err == nil || !strings.Contains(err.Error(), "`node` not found") || !strings.Contains(err.Error(), "Node.js") {
		t.Fatalf("EnsureInstalled without node: %v", err)
	}
}
