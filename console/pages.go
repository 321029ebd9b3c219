package console

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/groupsync/groupsync/inspect"
	"github.com/groupsync/groupsync/queue"
	"github.com/groupsync/groupsync/redact"
)

// Paths of the console's pages.
const (
	PathOverview    = "/"
	PathFailed      = "/failed"
	PathRetry       = "/failed/retry"
	PathRetryAll    = "/failed/retry-all"
	PathPurge       = "/failed/purge"
	PathGroups      = "/groups"
	PathStaticStyle = "/static/console.css"
)

func (s *Server) routes() {
	s.handle("GET /{$}", "overview", s.handleOverview)
	s.handle("GET "+PathFailed, "failed", s.handleFailed)
	s.handle("GET "+PathFailed+"/{id}", "failed_job", s.handleFailedJob)
	s.handle("GET "+PathGroups, "groups", s.handleFindGroup)
	s.handle("GET "+PathGroups+"/{guid}", "group", s.handleGroup)
	s.handle("GET "+PathGroups+"/{guid}/members", "member", s.handleFindMember)
	s.handle("GET "+PathGroups+"/{guid}/members/{uid}", "member", s.handleMember)
	s.handle("POST "+PathRetry, "retry", s.handleRetry)
	s.handle("POST "+PathRetryAll, "retry_all", s.handleRetryAll)
	s.handle("GET "+PathPurge, "purge", s.handlePurgeConfirm)
	s.handle("POST "+PathPurge, "purge", s.handlePurge)
	static, _ := fs.Sub(staticFS, "static")
	files := http.StripPrefix("/static/", http.FileServerFS(static))
	s.handle("GET /static/", "static", files.ServeHTTP)
	s.handle("/", "not_found", func(w http.ResponseWriter, r *http.Request) {
		s.fail(w, r, http.StatusNotFound, "no such page")
	})
}

// backendError answers err of the Backend: 404 for an unknown id, 409 for a
// job that cannot be replayed, else 503 (the error is logged).
func (s *Server) backendError(w http.ResponseWriter, r *http.Request, what string, err error) {
	switch {
	case errors.Is(err, inspect.ErrNotFound), errors.Is(err, queue.ErrJobNotFound):
		s.fail(w, r, http.StatusNotFound, err.Error())
	case errors.Is(err, queue.ErrNotReplayable):
		s.fail(w, r, http.StatusConflict, err.Error()+": repair its group with groupsync reconcile, then purge it")
	default:
		s.log.Warn().Err(redact.Error(err)).Str("page", info(r).page).Msg("console could not " + what)
		s.fail(w, r, http.StatusServiceUnavailable, "could not "+what+": "+err.Error())
	}
}

func (s *Server) handleOverview(w http.ResponseWriter, r *http.Request) {
	ov, err := s.backend.Overview(r.Context())
	if err != nil {
		s.backendError(w, r, "read the overview", err)
		return
	}
	if ov.Reconcile != nil {
		ov.Reconcile.Error = redact.Text(ov.Reconcile.Error)
	}
	s.render(w, r, http.StatusOK, "overview", page{Title: "Overview", Nav: "overview", Data: ov})
}

// failedFilter narrows the failed jobs listed.
type failedFilter struct {
	// Text is matched, ignoring case, against the id, group, trigger and
	// reason.
	Text string `json:"q,omitempty"`
	// Group is a guid, matched exactly.
	Group string `json:"group,omitempty"`
	// Trigger is a CometChat trigger, matched exactly.
	Trigger string `json:"trigger,omitempty"`
}

func (f failedFilter) match(j queue.FailedJob) bool {
	if f.Group != "" && j.GUID != f.Group {
		return false
	}
	if f.Trigger != "" && j.Trigger != f.Trigger {
		return false
	}
	if f.Text == "" {
		return true
	}
	q := strings.ToLower(f.Text)
	for _, v := range []string{j.ID, j.GUID, j.Trigger, j.Error} {
		if strings.Contains(strings.ToLower(v), q) {
			return true
		}
	}
	return false
}

// Limits of the failed jobs listed on one page.
const (
	// DefaultFailedLimit is how many failed jobs /failed lists at most,
	// newest first, unless its limit parameter says otherwise.
	DefaultFailedLimit = 500
	// MaxFailedLimit is the largest limit /failed takes.
	MaxFailedLimit = 10000
)

// failedView is the failed jobs page.
type failedView struct {
	Filter failedFilter `json:"filter"`
	// Total is how many jobs failed, Matched how many the filter lets
	// through, Jobs the newest Limit of those.
	Total   int               `json:"total"`
	Matched int               `json:"matched"`
	Limit   int               `json:"limit"`
	Jobs    []queue.FailedJob `json:"jobs"`
	// Triggers are the triggers of the failed jobs, for the filter's menu.
	Triggers []string `json:"-"`
}

func (s *Server) handleFailed(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f := failedFilter{
		Text:    strings.TrimSpace(q.Get("q")),
		Group:   strings.TrimSpace(q.Get("group")),
		Trigger: strings.TrimSpace(q.Get("trigger")),
	}
	limit := DefaultFailedLimit
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > MaxFailedLimit {
			s.fail(w, r, http.StatusBadRequest, fmt.Sprintf("limit %q: want 1 to %d", l, MaxFailedLimit))
			return
		}
		limit = n
	}
	all, err := s.backend.Failed(r.Context())
	if err != nil {
		s.backendError(w, r, "list the failed jobs", err)
		return
	}
	v := failedView{Filter: f, Total: len(all), Limit: limit, Jobs: []queue.FailedJob{}}
	for i := len(all) - 1; i >= 0; i-- {
		j := all[i]
		if j.Trigger != "" && !slices.Contains(v.Triggers, j.Trigger) {
			v.Triggers = append(v.Triggers, j.Trigger)
		}
		if !f.match(j) {
			continue
		}
		v.Matched++
		if len(v.Jobs) < limit {
			j.Error = redact.Text(j.Error)
			v.Jobs = append(v.Jobs, j)
		}
	}
	slices.Sort(v.Triggers)
	s.render(w, r, http.StatusOK, "failed", page{Title: "Failed jobs", Nav: "failed", Notice: notice(q), Data: v})
}

// actionResult is the JSON answer of a retry or a purge.
type actionResult struct {
	Retried *int `json:"retried,omitempty"`
	Purged  *int `json:"purged,omitempty"`
}

// done answers a retry or purge that changed n jobs: JSON, or a redirect
// to the failed jobs page, which says what was done (so reloading it posts
// nothing again).
func (s *Server) done(w http.ResponseWriter, r *http.Request, action string, n int) {
	s.log.Info().Str("action", action).Int("jobs", n).Msg("console changed failed jobs")
	if wantsJSON(r) {
		res := actionResult{}
		if action == "purged" {
			res.Purged = &n
		} else {
			res.Retried = &n
		}
		writeJSON(w, http.StatusOK, res)
		return
	}
	u := url.URL{Path: PathFailed, RawQuery: url.Values{"done": {action}, "n": {strconv.Itoa(n)}}.Encode()}
	http.Redirect(w, r, u.String(), http.StatusSeeOther)
}

// notice is the sentence the failed jobs page shows after an action.
func notice(q url.Values) string {
	n, err := strconv.Atoi(q.Get("n"))
	if err != nil || n < 0 {
		return ""
	}
	jobs := "jobs"
	if n == 1 {
		jobs = "job"
	}
	switch q.Get("done") {
	case "retried":
		return "Queued " + strconv.Itoa(n) + " " + jobs + " again."
	case "purged":
		return "Purged " + strconv.Itoa(n) + " failed " + jobs + "."
	}
	return ""
}

// action is what a retry or purge POST asks: from the form (fields id and
// confirm), or from a JSON body {"ids": [...], "confirm": true}.
type action struct {
	IDs     []string `json:"ids"`
	Confirm bool     `json:"confirm"`
}

// readAction reads r's action; a body that is neither is a 400.
func readAction(r *http.Request) (action, error) {
	var a action
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt == "application/json" {
		if err := json.NewDecoder(r.Body).Decode(&a); err != nil {
			return a, fmt.Errorf("the JSON body must be {\"ids\": [...], \"confirm\": true}: %v", err)
		}
	} else {
		if err := r.ParseForm(); err != nil {
			return a, fmt.Errorf("unreadable form: %v", err)
		}
		a.IDs, a.Confirm = r.Form["id"], r.Form.Get("confirm") == "yes"
	}
	ids := a.IDs[:0]
	for _, id := range a.IDs {
		if id = strings.TrimSpace(id); id != "" {
			ids = append(ids, id)
		}
	}
	a.IDs = ids
	return a, nil
}

func (s *Server) handleRetry(w http.ResponseWriter, r *http.Request) {
	a, err := readAction(r)
	if err != nil {
		s.fail(w, r, http.StatusBadRequest, err.Error())
		return
	}
	if len(a.IDs) == 0 {
		s.fail(w, r, http.StatusBadRequest, "select at least one failed job to retry")
		return
	}
	n, err := s.backend.Retry(r.Context(), a.IDs...)
	if err != nil {
		s.backendError(w, r, "retry the failed jobs", err)
		return
	}
	s.done(w, r, "retried", n)
}

func (s *Server) handleRetryAll(w http.ResponseWriter, r *http.Request) {
	n, err := s.backend.RetryAll(r.Context())
	if err != nil {
		s.backendError(w, r, "retry the failed jobs", err)
		return
	}
	s.done(w, r, "retried", n)
}

// purgeView is the purge confirmation page.
type purgeView struct {
	Failed int `json:"failed"`
	// Missing reports a POST without confirm=yes.
	Missing bool `json:"confirmation_missing,omitempty"`
}

func (s *Server) handlePurgeConfirm(w http.ResponseWriter, r *http.Request) {
	jobs, err := s.backend.Failed(r.Context())
	if err != nil {
		s.backendError(w, r, "list the failed jobs", err)
		return
	}
	s.render(w, r, http.StatusOK, "purge", page{Title: "Purge failed jobs", Nav: "failed", Data: purgeView{Failed: len(jobs)}})
}

func (s *Server) handlePurge(w http.ResponseWriter, r *http.Request) {
	a, err := readAction(r)
	if err != nil {
		s.fail(w, r, http.StatusBadRequest, err.Error())
		return
	}
	if !a.Confirm {
		jobs, err := s.backend.Failed(r.Context())
		if err != nil {
			s.backendError(w, r, "list the failed jobs", err)
			return
		}
		s.render(w, r, http.StatusBadRequest, "purge", page{Title: "Purge failed jobs", Nav: "failed", Data: purgeView{Failed: len(jobs), Missing: true}})
		return
	}
	n, err := s.backend.Purge(r.Context())
	if err != nil {
		s.backendError(w, r, "purge the failed jobs", err)
		return
	}
	s.done(w, r, "purged", n)
}

func (s *Server) handleFailedJob(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	d, err := s.backend.FailedJob(r.Context(), id)
	if err != nil {
		s.backendError(w, r, "read the failed job", err)
		return
	}
	d.Error = redact.Text(d.Error)
	s.render(w, r, http.StatusOK, "failed_job", page{Title: "Failed job", Nav: "failed", Data: d})
}

// findView is the page that finds a group, or a member of one.
type findView struct {
	GUID string `json:"guid,omitempty"`
}

// handleFindGroup is the target of the form that finds a group: with a
// guid it redirects to the group's page.
func (s *Server) handleFindGroup(w http.ResponseWriter, r *http.Request) {
	guid := strings.TrimSpace(r.URL.Query().Get("guid"))
	if guid != "" {
		http.Redirect(w, r, PathGroups+"/"+url.PathEscape(guid), http.StatusSeeOther)
		return
	}
	s.render(w, r, http.StatusOK, "groups", page{Title: "Groups", Nav: "groups", Data: findView{}})
}

// ParamBefore is the query parameter of a group page that asks for an
// older page of its history: the audit sequence the page ends below, as
// the Older link and the JSON's "older" give it.
const ParamBefore = "before"

// parseBefore reads the before parameter of q: 0 when absent, else a
// positive audit sequence; anything else is an error for a 400.
func parseBefore(q url.Values) (uint64, error) {
	if !q.Has(ParamBefore) {
		return 0, nil
	}
	v := q.Get(ParamBefore)
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil || n == 0 {
		if len(v) > 40 {
			v = v[:40] + "…"
		}
		return 0, fmt.Errorf("%s %q: want the audit sequence of a record, a whole number from 1 (the Older link and the JSON's \"older\" give it)", ParamBefore, v)
	}
	return n, nil
}

func (s *Server) handleGroup(w http.ResponseWriter, r *http.Request) {
	before, err := parseBefore(r.URL.Query())
	if err != nil {
		s.fail(w, r, http.StatusBadRequest, err.Error())
		return
	}
	if before != 0 {
		s.handleHistory(w, r, before)
		return
	}
	g, err := s.backend.Group(r.Context(), r.PathValue("guid"))
	if err != nil {
		s.backendError(w, r, "read the group", err)
		return
	}
	for i := range g.Failed {
		g.Failed[i].Error = redact.Text(g.Failed[i].Error)
	}
	g.Virgil.Note = redact.Text(g.Virgil.Note)
	s.render(w, r, http.StatusOK, "group", page{Title: "Group " + g.GUID, Nav: "groups", Data: g})
}

// handleHistory answers an older page of a group's history: the records
// below before, with a link to the next older page. It reads the audit
// trail only, not the store or Virgil, which the group's own page shows.
func (s *Server) handleHistory(w http.ResponseWriter, r *http.Request, before uint64) {
	p, err := s.backend.History(r.Context(), r.PathValue("guid"), before)
	if err != nil {
		s.backendError(w, r, "read the group's history", err)
		return
	}
	s.render(w, r, http.StatusOK, "history", page{Title: "History of group " + p.GUID, Nav: "groups", Data: p})
}

// handleFindMember is the target of the form that explains a member: with
// a uid it redirects to the member's page.
func (s *Server) handleFindMember(w http.ResponseWriter, r *http.Request) {
	guid := r.PathValue("guid")
	uid := strings.TrimSpace(r.URL.Query().Get("uid"))
	if uid == "" {
		http.Redirect(w, r, PathGroups+"/"+url.PathEscape(guid)+"#explain", http.StatusSeeOther)
		return
	}
	http.Redirect(w, r, PathGroups+"/"+url.PathEscape(guid)+"/members/"+url.PathEscape(uid), http.StatusSeeOther)
}

func (s *Server) handleMember(w http.ResponseWriter, r *http.Request) {
	m, err := s.backend.Explain(r.Context(), r.PathValue("guid"), r.PathValue("uid"))
	if err != nil {
		s.backendError(w, r, "explain the member", err)
		return
	}
	for i := range m.Failed {
		m.Failed[i].Error = redact.Text(m.Failed[i].Error)
	}
	m.VirgilNote = redact.Text(m.VirgilNote)
	s.render(w, r, http.StatusOK, "member", page{Title: m.UID + " in " + m.GUID, Nav: "groups", Data: m})
}
