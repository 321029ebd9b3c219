package console

import (
	"bytes"
	"embed"
	"encoding/json"
	"fmt"
	"html/template"
	"io/fs"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/groupsync/groupsync/queue"
	"github.com/groupsync/groupsync/redact"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// views are the parsed pages: each page's template together with the
// layout.
type views struct {
	pages map[string]*template.Template
}

// funcs are the helpers the templates may call.
var funcs = template.FuncMap{
	// path escapes one path segment (a guid, a uid, a job id).
	"path": url.PathEscape,
	// when formats a time for people, in UTC; the zero time is "never".
	"when": func(t time.Time) string {
		if t.IsZero() {
			return "never"
		}
		return t.UTC().Format("2006-01-02 15:04:05 UTC")
	},
	// iso formats a time for the datetime attribute of <time>.
	"iso": func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
	// ago says how long before now t was, rounded for people.
	"ago": func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return roundDuration(time.Since(t)) + " ago"
	},
	// dur rounds a duration for people.
	"dur": roundDuration,
	// clean removes secrets from URLs in text (reasons, errors).
	"clean": redact.Text,
	// pretty indents a JSON body for reading.
	"pretty": func(b []byte) string {
		var out bytes.Buffer
		if err := json.Indent(&out, b, "", "  "); err != nil {
			return string(b)
		}
		return out.String()
	},
	// replayable counts the jobs Retry can put back.
	"replayable": func(jobs []queue.FailedJob) int {
		n := 0
		for _, j := range jobs {
			if !j.Refused {
				n++
			}
		}
		return n
	},
	// deref is the value of a *bool, false for nil.
	"deref": func(b *bool) bool { return b != nil && *b },
	// yesno says yes or no.
	"yesno": func(b bool) string {
		if b {
			return "yes"
		}
		return "no"
	},
	"plural": func(n any, one, many string) string {
		if fmt.Sprint(n) == "1" {
			return one
		}
		return many
	},
}

// roundDuration shows d with a precision fit for people.
func roundDuration(d time.Duration) string {
	switch {
	case d <= 0:
		return "0s"
	case d < time.Millisecond:
		return d.Round(time.Microsecond).String()
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	case d < time.Minute:
		return d.Round(100 * time.Millisecond).String()
	case d < 24*time.Hour:
		return d.Round(time.Second).String()
	default:
		days := int(d / (24 * time.Hour))
		return fmt.Sprintf("%dd%s", days, (d % (24 * time.Hour)).Round(time.Minute))
	}
}

func parseViews() (*views, error) {
	layout, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html")
	if err != nil {
		return nil, fmt.Errorf("console: templates: %w", err)
	}
	names, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		return nil, fmt.Errorf("console: templates: %w", err)
	}
	v := &views{pages: map[string]*template.Template{}}
	for _, n := range names {
		name := strings.TrimSuffix(strings.TrimPrefix(n, "templates/"), ".html")
		if name == "layout" {
			continue
		}
		t, err := template.Must(layout.Clone()).ParseFS(templateFS, n)
		if err != nil {
			return nil, fmt.Errorf("console: template %s: %w", name, err)
		}
		v.pages[name] = t
	}
	return v, nil
}

// page is what every page's template gets.
type page struct {
	// Title is the page's heading and title.
	Title string
	// Nav is the section of the navigation the page belongs to.
	Nav string
	// Notice is a message about the last action (a retry, a purge).
	Notice string
	// CSRF is the token the page's forms post.
	CSRF string
	// Version is groupsync's version, for the footer.
	Version string
	// Data is the page's own data.
	Data any
}

// wantsJSON reports whether r's Accept header asks for JSON rather than
// HTML: application/json is listed, and text/html is not listed before it.
func wantsJSON(r *http.Request) bool {
	for _, part := range strings.Split(r.Header.Get("Accept"), ",") {
		mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil || params["q"] == "0" {
			continue
		}
		switch mt {
		case "application/json":
			return true
		case "text/html", "application/xhtml+xml":
			return false
		}
	}
	return false
}

// writeJSON answers v as JSON with status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

// render answers the page name with data: JSON when the request asks for
// it (data alone), else HTML. The page is rendered into a buffer first, so
// a template error is a 500, never half a page.
func (s *Server) render(w http.ResponseWriter, r *http.Request, status int, name string, p page) {
	if wantsJSON(r) {
		writeJSON(w, status, p.Data)
		return
	}
	t, ok := s.views.pages[name]
	if !ok {
		s.log.Error().Str("template", name).Msg("console template missing")
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	p.CSRF, p.Version = s.creds.csrf, s.cfg.Version
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "layout", p); err != nil {
		s.log.Error().Err(err).Str("template", name).Msg("console template failed")
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// errorView is the data of an error page, and the JSON of an error.
type errorView struct {
	Status  int    `json:"status"`
	Message string `json:"error"`
}

// fail answers an error: JSON when asked for, else the error page (a bare
// one before authentication, so nothing of the console shows).
func (s *Server) fail(w http.ResponseWriter, r *http.Request, status int, msg string) {
	msg = redact.Text(msg)
	if wantsJSON(r) {
		writeJSON(w, status, errorView{Status: status, Message: msg})
		return
	}
	if !info(r).auth {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(status)
		_, _ = fmt.Fprintln(w, msg)
		return
	}
	s.render(w, r, status, "error", page{Title: http.StatusText(status), Data: errorView{Status: status, Message: msg}})
}
