package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
)

// TestDeployMetricsExist checks that every groupsync metric the alerting
// rules and the Grafana dashboard in deploy/ read is one the code exports:
// a renamed metric must not leave an alert that can never fire.
func TestDeployMetricsExist(t *testing.T) {
	exported := exportedMetrics(t)
	re := regexp.MustCompile(`groupsync_[a-z0-9_]+`)
	for _, f := range []string{"../../deploy/prometheus/alerts.yml", "../../deploy/grafana/groupsync.json"} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range re.FindAllString(string(b), -1) {
			base := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(name, "_bucket"), "_count"), "_sum")
			if !exported[base] {
				t.Errorf("%s reads %s, which no package exports", filepath.Base(f), name)
			}
		}
	}
}

// TestAlertRules runs promtool on the alerting rules and their unit tests.
func TestAlertRules(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("promtool not found; install Debian's prometheus package")
		}
		t.Skip("promtool not found (apt-get install prometheus)")
	}
	for _, args := range [][]string{
		{"check", "rules", "../../deploy/prometheus/alerts.yml"},
		{"test", "rules", "../../deploy/prometheus/alerts_test.yml"},
	} {
		out, err := exec.Command(promtool, args...).CombinedOutput()
		if err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

// exportedMetrics reads the metric names the Go code registers: full
// names in NewDesc and Namespace/Subsystem/Name triples of the options.
func exportedMetrics(t *testing.T) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	full := regexp.MustCompile(`"(groupsync_[a-z0-9_]+)"`)
	sub := regexp.MustCompile(`Subsystem:\s*"([a-z_]+)"`)
	name := regexp.MustCompile(`Name:\s*"([a-z0-9_]+)"`)
	err := filepath.WalkDir("../..", func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "node_modules" || strings.HasPrefix(d.Name(), ".")) && path != "../.." {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		src := string(b)
		for _, m := range full.FindAllStringSubmatch(src, -1) {
			out[m[1]] = true
		}
		// Options spread over lines: pair each Name with the Subsystem
		// that precedes it.
		subs := sub.FindAllStringSubmatchIndex(src, -1)
		for _, n := range name.FindAllStringSubmatchIndex(src, -1) {
			s := ""
			for _, si := range subs {
				if si[0] < n[0] {
					s = src[si[2]:si[3]]
				}
			}
			if s != "" {
				out["groupsync_"+s+"_"+src[n[2]:n[3]]] = true
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(out) < 5 {
		names := make([]string, 0, len(out))
		for n := range out {
			names = append(names, n)
		}
		sort.Strings(names)
		t.Fatalf("found only these metrics in the code, the scan is broken: %v", names)
	}
	return out
}
