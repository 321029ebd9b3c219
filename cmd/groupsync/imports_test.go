package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/groupsync/groupsync"

// designDoc holds the import table TestImportRules enforces: the table is
// read from the document, so the document and the rules cannot drift apart.
const designDoc = "../../docs/design.md"

// importRule is one row of docs/design.md's import table.
type importRule struct {
	allowed   []string // packages of ours it may import
	leaf      bool     // limited to the standard library and thirdParty
	third     []string // module prefixes a leaf may import
	testsOnly bool     // a test helper: imported from _test.go files only
}

// parseImportTable reads the table between the "import table" markers of
// doc: | `pkg` | `a`, `b` | any, standard library or `mod`, ... | yes |.
func parseImportTable(doc string) (map[string]importRule, error) {
	const begin, end = "<!-- import table", "<!-- end of import table -->"
	i := strings.Index(doc, begin)
	j := strings.Index(doc, end)
	if i < 0 || j < i {
		return nil, errors.New("no import table between its markers")
	}
	rules := map[string]importRule{}
	for _, line := range strings.Split(doc[i:j], "\n")[1:] {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		cells := strings.Split(strings.Trim(line, "|"), "|")
		if len(cells) != 4 {
			return nil, fmt.Errorf("row %q: want 4 cells", line)
		}
		for k := range cells {
			cells[k] = strings.TrimSpace(cells[k])
		}
		if cells[0] == "package" || strings.HasPrefix(cells[0], "---") {
			continue
		}
		name := strings.Trim(cells[0], "`")
		if _, dup := rules[name]; dup {
			return nil, fmt.Errorf("package %s has two rows", name)
		}
		r := importRule{allowed: codeList(cells[1]), testsOnly: cells[3] == "yes"}
		switch cells[2] {
		case "any":
		case "standard library":
			r.leaf = true
		default:
			r.leaf, r.third = true, codeList(cells[2])
			if len(r.third) == 0 {
				return nil, fmt.Errorf("row %s: outside the module %q: want any, standard library or `module` names", name, cells[2])
			}
		}
		rules[name] = r
	}
	if len(rules) == 0 {
		return nil, errors.New("the import table has no rows")
	}
	return rules, nil
}

// codeList returns the `quoted` names of a cell.
func codeList(cell string) []string {
	var out []string
	for _, part := range strings.Split(cell, ",") {
		if p := strings.Trim(strings.TrimSpace(part), "`"); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func importTable(t *testing.T) map[string]importRule {
	t.Helper()
	b, err := os.ReadFile(designDoc)
	if err != nil {
		t.Fatal(err)
	}
	rules, err := parseImportTable(string(b))
	if err != nil {
		t.Fatalf("docs/design.md: %v", err)
	}
	return rules
}

type listedPackage struct {
	ImportPath string
	Imports    []string
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

// checkImports returns every way pkgs break rules.
func checkImports(rules map[string]importRule, pkgs []listedPackage) []string {
	var errs []string
	seen := map[string]bool{}
	for _, p := range pkgs {
		name, ok := rel(p.ImportPath)
		if !ok {
			continue
		}
		seen[name] = true
		rule, known := rules[name]
		if !known {
			errs = append(errs, fmt.Sprintf("package %s is not in docs/design.md's import table; add a row with its allowed imports", name))
			continue
		}
		for _, imp := range p.Imports {
			if dep, ours := rel(imp); ours {
				if !slices.Contains(rule.allowed, dep) {
					errs = append(errs, fmt.Sprintf("%s imports %s: not allowed by docs/design.md", name, dep))
				}
				if r, ok := rules[dep]; ok && r.testsOnly {
					errs = append(errs, fmt.Sprintf("%s imports test helper %s outside its tests", name, dep))
				}
				continue
			}
			if rule.leaf && !isStandard(imp) && !hasAnyPrefix(imp, rule.third) {
				errs = append(errs, fmt.Sprintf("%s imports %s: the leaf package may import only the standard library and %v", name, imp, rule.third))
			}
		}
	}
	for name := range rules {
		if !seen[name] {
			errs = append(errs, fmt.Sprintf("docs/design.md's import table has a row for %s, which is not a package of the module", name))
		}
	}
	slices.Sort(errs)
	return errs
}

// TestImportRules enforces docs/design.md's import table on every package
// of the module.
func TestImportRules(t *testing.T) {
	rules := importTable(t)
	pkgs := listPackages(t)
	if len(pkgs) < 5 {
		t.Fatalf("go list found %d packages, want the whole module", len(pkgs))
	}
	for _, e := range checkImports(rules, pkgs) {
		t.Error(e)
	}
}

// TestImportRulesCatchViolations makes sure the checker above can fail.
func TestImportRulesCatchViolations(t *testing.T) {
	rules := importTable(t)
	if slices.Contains(rules["webhook"].allowed, "worker") || slices.Contains(rules["worker"].allowed, "webhook") {
		t.Fatal("webhook and worker must never import each other")
	}
	for name, r := range rules {
		if slices.Contains(r.allowed, "cmd/groupsync") || slices.Contains(r.allowed, "test/chaos") {
			t.Errorf("%s may import a command; nothing may", name)
		}
	}
	for _, tc := range []struct {
		name string
		pkgs []listedPackage
	}{
		{"ForbiddenImport", []listedPackage{{module + "/webhook", []string{module + "/worker"}}}},
		{"LeafImportsThirdParty", []listedPackage{{module + "/groupsync", []string{"github.com/rs/zerolog"}}}},
		{"TestHelperInCode", []listedPackage{{module + "/worker", []string{module + "/worker/redistest"}}}},
		{"UnknownPackage", []listedPackage{{module + "/newpkg", nil}}},
	} {
		if errs := checkImports(rules, tc.pkgs); !slices.ContainsFunc(errs, func(e string) bool { return !strings.Contains(e, "not a package of the module") }) {
			t.Errorf("%s: checker found nothing: %v", tc.name, errs)
		}
	}
	if errs := checkImports(rules, nil); len(errs) != len(rules) {
		t.Errorf("an empty module gives %d errors, want one per table row (%d)", len(errs), len(rules))
	}
	if !isStandard("crypto/ed25519") || isStandard("github.com/rs/zerolog") {
		t.Fatal("standard library detection is wrong")
	}
	if _, err := parseImportTable("no table here"); err == nil {
		t.Fatal("a document without the table parses")
	}
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
