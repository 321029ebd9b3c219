package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/groupsync/groupsync"

// allowedImports is DESIGN.md's import table: the packages of ours each
// package may import in its non-test code. Anything of ours not listed is
// forbidden.
var allowedImports = map[string][]string{
	"cmd/groupsync":   {"webhook", "worker", "queue", "queue/natsembed", "virgil", "virgil/emulator", "groupsync", "cometchat", "redact"},
	"webhook":         {"groupsync", "virgil", "cometchat", "redact"},
	"worker":          {"groupsync", "virgil", "queue", "redact"},
	"queue":           {"groupsync", "redact"},
	"virgil/emulator": {"virgil", "virgil/pythia", "redact"},
	"groupsync":       {},
	// groupsynctest generates CometChat histories and their expected
	// outcome for the property tests and the chaos harness.
	"groupsync/groupsynctest": {"groupsync"},
	"virgil":                  {"redact"},
	// virgil/pythia is Pythia (BrainKey) in RELIC's encodings; the emulator
	// serves it.
	"virgil/pythia": {},
	// redact removes secrets from URLs and messages; a leaf every package
	// may use.
	"redact": {},
	// cometchat is the REST client of CometChat: the client API checks
	// tokens with it, cmd wires it into reconcile.
	"cometchat":               {"redact"},
	"cometchat/cometchattest": {"cometchat"},
	// queue/natsembed runs nats-server in the process (dev mode, tests,
	// the harness).
	"queue/natsembed": {},
	// Test helpers serve one package each and are imported from tests only.
	"queue/natstest":   {"queue/natsembed"},
	"worker/redistest": {},
	"virgil/interop":   {"virgil"},
	// The load and chaos harness drives the binary from outside; nothing
	// imports it. Being a test harness itself, it runs the fake CometChat
	// REST API that serves its generator's truth.
	"test/chaos": {"groupsync", "groupsync/groupsynctest", "virgil", "redact", "cometchat/cometchattest"},
	// The browser test drives the binary and Chromium; nothing imports it.
	"test/browser": {},
}

// leafThirdParty is what the two leaf packages may import besides the
// standard library.
var leafThirdParty = map[string][]string{
	"groupsync": {},
	"redact":    {},
	"cometchat": {},
	"virgil":    {"golang.org/x/crypto", "filippo.io/edwards25519"},
	// Pythia's pairing and group arithmetic on BLS12-381.
	"virgil/pythia": {"github.com/cloudflare/circl"},
}

// testHelpers may only be imported by _test.go files (and by test/chaos,
// a test harness).
var testHelpers = []string{"queue/natstest", "worker/redistest", "virgil/interop", "cometchat/cometchattest"}

type listedPackage struct {
	ImportPath string
	Imports    []string
	Deps       []string
	Standard   bool
}

func listPackages(t *testing.T) []listedPackage {
	t.Helper()
	cmd := exec.Command("go", "list", "-json", module+"/...")
	cmd.Dir = "../.."
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.String())
	}
	var pkgs []listedPackage
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p listedPackage
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("decode go list output: %v", err)
		}
		pkgs = append(pkgs, p)
	}
	return pkgs
}

func rel(path string) (string, bool) {
	if path == module {
		return "", true
	}
	return strings.CutPrefix(path, module+"/")
}

func TestImportRules(t *testing.T) {
	pkgs := listPackages(t)
	if len(pkgs) < 5 {
		t.Fatalf("go list found %d packages, want the whole module", len(pkgs))
	}
	for _, p := range pkgs {
		name, ok := rel(p.ImportPath)
		if !ok {
			continue
		}
		allowed, known := allowedImports[name]
		if !known {
			t.Errorf("package %s is not in DESIGN.md's import table; add it to allowedImports with its allowed imports", name)
			continue
		}
		for _, imp := range p.Imports {
			dep, ours := rel(imp)
			if !ours {
				continue
			}
			if !contains(allowed, dep) {
				t.Errorf("%s imports %s: not allowed by DESIGN.md", name, dep)
			}
		}
		if third, leaf := leafThirdParty[name]; leaf {
			for _, imp := range p.Imports {
				if isStandard(imp) {
					continue
				}
				if !hasAnyPrefix(imp, third) {
					t.Errorf("%s imports %s: the leaf package may import only the standard library and %v", name, imp, third)
				}
			}
		}
		if name == "test/chaos" {
			continue
		}
		for _, imp := range p.Imports {
			dep, ours := rel(imp)
			if ours && contains(testHelpers, dep) {
				t.Errorf("%s imports test helper %s outside its tests", name, dep)
			}
		}
	}
}

// TestImportRulesCatchViolations makes sure the checker above can fail.
func TestImportRulesCatchViolations(t *testing.T) {
	if contains(allowedImports["webhook"], "worker") || contains(allowedImports["worker"], "webhook") {
		t.Fatal("webhook and worker must never import each other")
	}
	if !hasAnyPrefix("golang.org/x/crypto/curve25519", leafThirdParty["virgil"]) {
		t.Fatal("prefix check rejects an allowed import")
	}
	if hasAnyPrefix("github.com/rs/zerolog", leafThirdParty["virgil"]) {
		t.Fatal("prefix check accepts a forbidden import")
	}
	if !isStandard("crypto/ed25519") || isStandard("github.com/rs/zerolog") {
		t.Fatal("standard library detection is wrong")
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func hasAnyPrefix(path string, prefixes []string) bool {
	for _, p := range prefixes {
		if path == p || strings.HasPrefix(path, p+"/") {
			return true
		}
	}
	return false
}

// isStandard reports whether an import path belongs to the standard library:
// its first element has no dot.
func isStandard(path string) bool {
	first, _, _ := strings.Cut(path, "/")
	return !strings.Contains(first, ".")
}
