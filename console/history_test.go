package console_test

import (
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/groupsync/groupsync/console"
	"github.com/groupsync/groupsync/inspect"
	"github.com/groupsync/groupsync/queue"
)

// olderLink is the Older link of a history, with its before.
var olderLink = regexp.MustCompile(`<a href="/groups/long\?before=(\d+)" rel="next" id="history-older">Older changes</a>`)

// TestGroupHistoryPages: a group with more audit records than a page
// shows the newest on its page and the rest on older pages, linked by
// Older links (and the JSON's "older"), which never overlap, together hold
// every record, and end with a page without a link. A before that is no
// audit sequence is a 400 that says what is wanted.
func TestGroupHistoryPages(t *testing.T) {
	b := openParts(t)
	const n = 2*inspect.DefaultHistoryLimit + 23
	at := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	var recs, other []queue.AuditRecord
	for i := range n {
		recs = append(recs, queue.AuditRecord{GUID: "long", UID: fmt.Sprintf("u%03d", i), Action: "add", Trigger: "group_member_added",
			JobID: fmt.Sprintf("job-%d", i), StreamSeq: uint64(i + 1), Worker: "w1", AppliedAt: at.Add(time.Duration(i) * time.Second)})
		if i%10 == 0 { // records of another group between them
			other = append(other, queue.AuditRecord{GUID: "short", UID: fmt.Sprintf("o%d", i), Action: "add", Trigger: "group_member_added",
				JobID: fmt.Sprintf("other-%d", i), StreamSeq: uint64(1000 + i), Worker: "w1", AppliedAt: at})
		}
	}
	ctx, cancel := testContext()
	defer cancel()
	for i := 0; i < n; i += 10 {
		if err := b.audit.Append(ctx, recs[i:min(i+10, n)]); err != nil {
			t.Fatalf("Append: %v", err)
		}
		if err := b.audit.Append(ctx, other[i/10:i/10+1]); err != nil {
			t.Fatalf("Append: %v", err)
		}
	}
	b.serve(t)

	t.Run("JSON", func(t *testing.T) {
		var g inspect.GroupReport
		b.getJSON(t, "/groups/long", &g)
		if len(g.History) != inspect.DefaultHistoryLimit || g.Older == 0 || g.Older != g.History[0].Seq {
			t.Fatalf("group page: %d records, older %d; want %d, older the first's seq", len(g.History), g.Older, inspect.DefaultHistoryLimit)
		}
		pages := [][]queue.AuditRecord{g.History}
		seen := map[uint64]bool{}
		for before := g.Older; before != 0; {
			var p inspect.HistoryPage
			b.getJSON(t, "/groups/long?"+console.ParamBefore+"="+strconv.FormatUint(before, 10), &p)
			if p.GUID != "long" || p.Before != before || len(p.History) == 0 {
				t.Fatalf("page before %d = %+v", before, p)
			}
			pages, before = append(pages, p.History), p.Older
			if len(pages) > n {
				t.Fatal("the pages never end")
			}
		}
		var sizes []int
		var uids []string
		for i := len(pages) - 1; i >= 0; i-- { // oldest page first
			sizes = append([]int{len(pages[i])}, sizes...)
			for _, r := range pages[i] {
				if seen[r.Seq] {
					t.Errorf("record %d (%s) on two pages", r.Seq, r.UID)
				}
				seen[r.Seq] = true
				uids = append(uids, r.UID)
			}
		}
		if fmt.Sprint(sizes) != fmt.Sprint([]int{50, 50, 23}) {
			t.Errorf("page sizes, newest first = %v, want [50 50 23]", sizes)
		}
		for i, u := range uids {
			if u != fmt.Sprintf("u%03d", i) {
				t.Fatalf("record %d of the pages, oldest first, is %s: the pages do not hold every record in order: %v", i, u, uids)
			}
		}
		if len(uids) != n {
			t.Errorf("the pages hold %d records, want %d", len(uids), n)
		}
	})

	t.Run("HTML", func(t *testing.T) {
		path, count, pages := "/groups/long", 0, 0
		for path != "" {
			resp := b.do(t, "GET", path, nil, htmlAccept)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("GET %s = %d", path, resp.StatusCode)
			}
			for _, p := range checkAccessible(resp.body) {
				t.Errorf("GET %s: %s", path, p)
			}
			count += strings.Count(resp.body, "<li>\n<time")
			pages++
			m := olderLink.FindAllStringSubmatch(resp.body, -1)
			switch {
			case len(m) > 1:
				t.Fatalf("GET %s has %d Older links", path, len(m))
			case len(m) == 1:
				path = "/groups/long?before=" + m[0][1]
				if !strings.Contains(resp.body, `id="history"`) {
					t.Errorf("GET %s: an Older link without a history", path)
				}
			default:
				path = ""
				if strings.Contains(resp.body, "Older changes") {
					t.Errorf("the last page links to older changes")
				}
			}
			if pages > 1 && !strings.Contains(resp.body, `<a href="/groups/long" id="history-group">`) {
				t.Errorf("older page %s has no link back to the group", path)
			}
		}
		if pages != 3 || count != n {
			t.Errorf("followed %d pages with %d changes, want 3 pages with %d", pages, count, n)
		}
		// A group that fits on one page has no Older link.
		if resp := b.do(t, "GET", "/groups/short", nil, htmlAccept); resp.StatusCode != http.StatusOK || strings.Contains(resp.body, "history-older") {
			t.Errorf("GET /groups/short = %d, with an Older link: %v", resp.StatusCode, strings.Contains(resp.body, "history-older"))
		}
	})

	t.Run("BeforeTheFirst", func(t *testing.T) {
		var p inspect.HistoryPage
		b.getJSON(t, "/groups/long?before=1", &p)
		if len(p.History) != 0 || p.Older != 0 {
			t.Errorf("page before 1 = %+v, want no record and no older page", p)
		}
		resp := b.do(t, "GET", "/groups/long?before=1", nil, htmlAccept)
		if resp.StatusCode != http.StatusOK || !strings.Contains(resp.body, "No older change") || strings.Contains(resp.body, "history-older") {
			t.Errorf("GET before=1 = %d:\n%s", resp.StatusCode, resp.body)
		}
	})

	t.Run("BadBefore", func(t *testing.T) {
		for _, v := range []string{"", "0", "-3", "abc", "1.5", "0x10", "18446744073709551616", strings.Repeat("9", 200)} {
			path := "/groups/long?before=" + url.QueryEscape(v)
			for _, accept := range []reqOpt{jsonAccept, htmlAccept} {
				resp := b.do(t, "GET", path, nil, accept)
				if resp.StatusCode != http.StatusBadRequest || !strings.Contains(resp.body, "want the audit sequence of a record") {
					t.Errorf("GET %s = %d, want 400 saying what before wants:\n%.300s", path, resp.StatusCode, resp.body)
				}
			}
		}
	})
}
