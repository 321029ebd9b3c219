package console_test

import (
	"fmt"
	"net/url"
	"strings"
	"testing"

	"golang.org/x/net/html"
)

// checkAccessible parses an HTML page and reports what keeps keyboard and
// screen reader users out, or would need a script: no lang, not one h1,
// form controls without a label, duplicate ids, tables without a caption
// or header scopes, buttons without text, any script, inline style or
// event handler attribute.
func checkAccessible(page string) []string {
	doc, err := html.Parse(strings.NewReader(page))
	if err != nil {
		return []string{err.Error()}
	}
	var problems []string
	ids := map[string]int{}
	labels := map[string]bool{}
	var controls []*html.Node
	h1 := 0
	attr := func(n *html.Node, k string) (string, bool) {
		for _, a := range n.Attr {
			if a.Key == k {
				return a.Val, true
			}
		}
		return "", false
	}
	var text func(n *html.Node) string
	text = func(n *html.Node) string {
		if n.Type == html.TextNode {
			return n.Data
		}
		var b strings.Builder
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			b.WriteString(text(c))
		}
		return b.String()
	}
	var walk func(n *html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.ElementNode {
			if id, ok := attr(n, "id"); ok {
				ids[id]++
			}
			for _, a := range n.Attr {
				if strings.HasPrefix(a.Key, "on") || a.Key == "style" {
					problems = append(problems, fmt.Sprintf("<%s %s=...>: inline script or style", n.Data, a.Key))
				}
			}
			switch n.Data {
			case "html":
				if lang, _ := attr(n, "lang"); lang == "" {
					problems = append(problems, "<html> without lang")
				}
			case "script":
				problems = append(problems, "a <script> element")
			case "h1":
				h1++
			case "label":
				if f, ok := attr(n, "for"); ok {
					labels[f] = true
				}
			case "input", "select", "textarea":
				if t, _ := attr(n, "type"); t != "hidden" && t != "submit" {
					controls = append(controls, n)
				}
			case "button":
				if strings.TrimSpace(text(n)) == "" {
					problems = append(problems, "a <button> without text")
				}
			case "table":
				hasCaption := false
				for c := n.FirstChild; c != nil; c = c.NextSibling {
					hasCaption = hasCaption || c.Type == html.ElementNode && c.Data == "caption"
				}
				if !hasCaption {
					id, _ := attr(n, "id")
					problems = append(problems, fmt.Sprintf("<table id=%q> without a caption", id))
				}
			case "th":
				if s, _ := attr(n, "scope"); s != "col" && s != "row" {
					problems = append(problems, fmt.Sprintf("<th>%s</th> without scope", strings.TrimSpace(text(n))))
				}
			}
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(doc)
	if h1 != 1 {
		problems = append(problems, fmt.Sprintf("%d <h1> elements, want 1", h1))
	}
	for _, c := range controls {
		id, _ := attr(c, "id")
		_, aria := attr(c, "aria-label")
		if !aria && (id == "" || !labels[id]) {
			name, _ := attr(c, "name")
			problems = append(problems, fmt.Sprintf("<%s name=%q id=%q> without a label", c.Data, name, id))
		}
	}
	for id, n := range ids {
		if n > 1 {
			problems = append(problems, fmt.Sprintf("id %q used %d times", id, n))
		}
	}
	return problems
}

func TestPagesAreAccessible(t *testing.T) {
	s := setupGroups(t)
	for _, path := range []string{
		"/", "/failed", "/failed?group=big", "/failed/" + url.PathEscape(s.recon.ID), "/failed/purge", "/groups",
		"/groups/team", "/groups/big", "/groups/team/members/carol", "/groups/team/members/dave", "/no-such-page", "/groups/no-such-group",
	} {
		resp := s.do(t, "GET", path, nil, htmlAccept)
		if !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
			t.Errorf("GET %s: Content-Type %q", path, resp.Header.Get("Content-Type"))
			continue
		}
		for _, p := range checkAccessible(resp.body) {
			t.Errorf("GET %s: %s", path, p)
		}
	}
}

func TestCheckAccessibleFindsProblems(t *testing.T) {
	bad := `<!doctype html><html><body><h1>a</h1><h1>b</h1><input name="q"><table><tr><th>x</th></tr></table>` +
		`<button></button><p id="d"></p><p id="d" style="color:red"></p><script>1</script></body></html>`
	got := strings.Join(checkAccessible(bad), "\n")
	for _, want := range []string{"without lang", "2 <h1>", `name="q"`, "without a caption", "without scope", "<button> without text", `id "d" used 2 times`, "inline script or style", "<script>"} {
		if !strings.Contains(got, want) {
			t.Errorf("checkAccessible(bad page) does not report %q; it reports:\n%s", want, got)
		}
	}
}
