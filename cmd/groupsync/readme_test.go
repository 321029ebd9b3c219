package main

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// TestReadmeConfigTable checks the README's configuration table against the
// options the commands register: every option documented with its flag and
// default, and nothing documented that does not exist.
func TestReadmeConfigTable(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	row := regexp.MustCompile("^\\| `(GROUPSYNC_[A-Z0-9_]+)`(?: / `GROUPSYNC_[A-Z0-9_]+_FILE`)? \\| `--([a-z0-9-]+)` \\| (`[^`]*`)? *\\|")
	documented := map[string]bool{}
	for _, line := range strings.Split(string(b), "\n") {
		m := row.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		env, flagName, def := m[1], m[2], strings.Trim(m[3], "`")
		name := strings.ToLower(strings.ReplaceAll(strings.TrimPrefix(env, "GROUPSYNC_"), "_", "-"))
		o, ok := options[name]
		if !ok {
			t.Errorf("README documents %s, which no command reads", env)
			continue
		}
		documented[name] = true
		wantFlag := o.name
		if o.secret {
			wantFlag += "-file"
		}
		if flagName != wantFlag {
			t.Errorf("README gives %s the flag --%s, want --%s", env, flagName, wantFlag)
		}
		if def != o.def {
			t.Errorf("README gives %s the default %q, want %q", env, def, o.def)
		}
	}
	for name, o := range options {
		if !documented[name] {
			t.Errorf("option %s (%s) is missing from the README's configuration table", name, o.env())
		}
	}
}
