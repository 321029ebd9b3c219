package emulator

import (
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/groupsync/groupsync/virgil"
)

const debugPrefix = "/_emulator/"

// GroupView is what an E3Kit member would see of a group: the identities of
// the newest epoch and the epochs that exist.
type GroupView struct {
	// Participants are the identities of the newest epoch's entry,
	// deduplicated and sorted.
	Participants []string `json:"participants"`
	// Epochs are the entry keys, in numeric order.
	Epochs []string `json:"epochs"`
	// History lists the latest changes of Participants (at most
	// MaxGroupHistory), oldest first, and HistoryDropped counts the older
	// changes no longer kept; only with ?history=1.
	History        []GroupChange `json:"history,omitempty"`
	HistoryDropped int           `json:"history_dropped,omitempty"`
}

// groupHistory is the kept changes of one group.
type groupHistory struct {
	changes []GroupChange
	dropped int
}

// GroupChange is one change of what members see of a group.
type GroupChange struct {
	// At is when the change was stored (by Config.Now).
	At time.Time `json:"at"`
	// Participants are the newest epoch's identities after the change,
	// sorted; empty when the group was deleted.
	Participants []string `json:"participants"`
	// Epochs counts the group's epochs after the change.
	Epochs int `json:"epochs"`
}

// MaxGroupHistory is how many changes the emulator keeps per group, in
// memory only, for measuring when a change became visible.
const MaxGroupHistory = 2048

// participantsLocked returns the newest epoch's identities of the group at
// pk, sorted and deduplicated, and the epoch keys; e.mu must be held.
func (e *Emulator) participantsLocked(pk pathKey) (participants, epochs []string) {
	m := e.st.entries[pk]
	if len(m) == 0 {
		return []string{}, nil
	}
	epochs = make([]string, 0, len(m))
	for k := range m {
		epochs = append(epochs, k)
	}
	sortKeys(epochs)
	participants = slices.Clone(m[epochs[len(epochs)-1]].Identities)
	slices.Sort(participants)
	participants = slices.Compact(participants)
	if participants == nil {
		participants = []string{}
	}
	return participants, epochs
}

// recordLocked notes a change of the group sessions at pk when what
// members see of it changed; e.mu must be held.
func (e *Emulator) recordLocked(pk pathKey) {
	if pk.root != virgil.GroupSessionsRoot {
		return
	}
	participants, epochs := e.participantsLocked(pk)
	h := e.history[pk]
	if h == nil {
		h = &groupHistory{}
		e.history[pk] = h
	}
	if n := len(h.changes); n > 0 && h.changes[n-1].Epochs == len(epochs) && slices.Equal(h.changes[n-1].Participants, participants) {
		return
	}
	if len(h.changes) >= MaxGroupHistory {
		drop := len(h.changes) - MaxGroupHistory + 1
		h.changes = slices.Delete(h.changes, 0, drop)
		h.dropped += drop
	}
	h.changes = append(h.changes, GroupChange{At: e.cfg.Now(), Participants: participants, Epochs: len(epochs)})
}

// GroupHistory returns the latest changes of the group's participants seen
// since New (at most MaxGroupHistory), oldest first, and how many older ones
// were dropped. Safe for concurrent use.
func (e *Emulator) GroupHistory(ownerIdentity, groupID string) (changes []GroupChange, dropped int) {
	path, err := virgil.SessionPath(groupID)
	if err != nil {
		return nil, 0
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	h := e.history[pathKey{ownerIdentity, virgil.GroupSessionsRoot, path}]
	if h == nil {
		return nil, 0
	}
	return slices.Clone(h.changes), h.dropped
}

// Group returns the view of groupID owned by ownerIdentity, read from the
// Keyknox entries under root "group-sessions" and path
// hex(SHA-512(groupID)[0:32]). ok is false when the group has no entry (or
// the id is shorter than 10 bytes). Safe for concurrent use.
func (e *Emulator) Group(ownerIdentity, groupID string) (GroupView, bool) {
	path, err := virgil.SessionPath(groupID)
	if err != nil {
		return GroupView{}, false
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	participants, epochs := e.participantsLocked(pathKey{ownerIdentity, virgil.GroupSessionsRoot, path})
	if len(epochs) == 0 {
		return GroupView{}, false
	}
	return GroupView{Participants: participants, Epochs: epochs}, true
}

// Card returns the newest card of identity that is neither revoked nor
// replaced, as served (with the "virgil" signature). ok is false when there
// is none. Safe for concurrent use.
func (e *Emulator) Card(identity string) (*virgil.Card, bool) {
	e.mu.Lock()
	var raw *virgil.RawCard
	cards := e.st.byIdentity[identity]
	for i := len(cards) - 1; i >= 0; i-- {
		if c := cards[i]; !c.superseded() {
			raw = c.Raw.Clone()
			break
		}
	}
	e.mu.Unlock()
	if raw == nil {
		return nil, false
	}
	c, err := raw.Card()
	if err != nil {
		return nil, false
	}
	return c, true
}

// Fault makes the emulator fail or slow down Virgil API requests (not the
// /_emulator/ endpoints nor CORS preflights), for chaos tests.
type Fault struct {
	// Status is the HTTP status of the injected error (e.g. 500, 503, 429);
	// 0 injects only Delay.
	Status int
	// RetryAfter, when positive, is sent as Retry-After (whole seconds,
	// rounded up).
	RetryAfter time.Duration
	// Delay holds each affected request this long before answering.
	Delay time.Duration
	// Every affects every Nth request after SetFault; 0 and 1 mean all.
	Every int
	// Until ends the fault (by Config.Now); zero means until ClearFault.
	Until time.Time
}

func (f Fault) active() bool { return f.Status != 0 || f.Delay > 0 }

// SetFault installs f, replacing the previous fault and restarting its
// request count. Safe for concurrent use.
func (e *Emulator) SetFault(f Fault) {
	e.faultMu.Lock()
	e.fault, e.faultCount = f, 0
	e.faultMu.Unlock()
}

// ClearFault removes the fault. Safe for concurrent use.
func (e *Emulator) ClearFault() { e.SetFault(Fault{}) }

// Stats are request counters since New.
type Stats struct {
	// Requests counts Virgil API requests (fault-injected ones included).
	Requests uint64 `json:"requests"`
	// Faults counts injected error answers.
	Faults uint64 `json:"faults"`
	// Delayed counts requests held back by a Fault's Delay.
	Delayed uint64 `json:"delayed"`
	// Rejected counts error answers the emulator gave on its own.
	Rejected uint64 `json:"rejected"`
}

// Stats returns the counters. Safe for concurrent use.
func (e *Emulator) Stats() Stats {
	return Stats{Requests: e.requests.Load(), Faults: e.faults.Load(), Delayed: e.delayed.Load(), Rejected: e.rejected.Load()}
}

// injectFault applies the current fault to r; it reports whether it has
// answered.
func (e *Emulator) injectFault(w http.ResponseWriter, r *http.Request) bool {
	e.faultMu.Lock()
	f := e.fault
	hit := false
	if f.active() {
		if !f.Until.IsZero() && !e.cfg.Now().Before(f.Until) {
			e.fault, e.faultCount = Fault{}, 0
		} else {
			e.faultCount++
			hit = f.Every <= 1 || e.faultCount%f.Every == 0
		}
	}
	e.faultMu.Unlock()
	if !hit {
		return false
	}
	if f.Delay > 0 {
		e.delayed.Add(1)
		t := time.NewTimer(f.Delay)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
		}
	}
	if f.Status == 0 {
		return false
	}
	e.faults.Add(1)
	if f.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.FormatInt(int64(math.Ceil(f.RetryAfter.Seconds())), 10))
	}
	writeJSONError(w, &Error{Status: f.Status, Code: CodeInjectedFault, Message: "injected fault"})
	return true
}

// FaultRequest is the JSON body of POST /_emulator/fault. Durations are Go
// duration strings ("250ms", "2s"); For is an alternative to Until,
// relative to the emulator's clock.
type FaultRequest struct {
	// Status is Fault.Status.
	Status int `json:"status"`
	// RetryAfter is Fault.RetryAfter.
	RetryAfter string `json:"retry_after,omitempty"`
	// Delay is Fault.Delay.
	Delay string `json:"delay,omitempty"`
	// Every is Fault.Every.
	Every int `json:"every,omitempty"`
	// Until is Fault.Until (RFC 3339).
	Until time.Time `json:"until,omitzero"`
	// For sets Until to now plus this duration.
	For string `json:"for,omitempty"`
}

// Fault converts the request; now resolves For.
func (fr FaultRequest) Fault(now time.Time) (Fault, error) {
	f := Fault{Status: fr.Status, Every: fr.Every, Until: fr.Until}
	if fr.Status != 0 && (fr.Status < 400 || fr.Status > 599) {
		return Fault{}, fmt.Errorf("emulator: fault status %d is not 4xx or 5xx", fr.Status)
	}
	if fr.Every < 0 {
		return Fault{}, fmt.Errorf("emulator: fault every %d is negative", fr.Every)
	}
	for _, d := range []struct {
		s   string
		dst *time.Duration
	}{{fr.RetryAfter, &f.RetryAfter}, {fr.Delay, &f.Delay}} {
		if d.s == "" {
			continue
		}
		v, err := time.ParseDuration(d.s)
		if err != nil || v < 0 {
			return Fault{}, fmt.Errorf("emulator: fault duration %q is invalid", d.s)
		}
		*d.dst = v
	}
	if fr.For != "" {
		v, err := time.ParseDuration(fr.For)
		if err != nil || v <= 0 {
			return Fault{}, fmt.Errorf("emulator: fault for %q is invalid", fr.For)
		}
		f.Until = now.Add(v)
	}
	return f, nil
}

// serveDebug serves the /_emulator/ endpoints (no token needed).
func (e *Emulator) serveDebug(w http.ResponseWriter, r *http.Request) {
	rest := strings.TrimPrefix(r.URL.Path, debugPrefix)
	writeJSON := func(v any) {
		b, _ := json.Marshal(v)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(b)
	}
	switch {
	case strings.HasPrefix(rest, "groups/") && r.Method == http.MethodGet:
		groupID := strings.TrimPrefix(rest, "groups/")
		owner := r.URL.Query().Get("owner")
		if owner == "" {
			writeJSONError(w, apiErr(http.StatusBadRequest, CodeKeyknoxInvalidParams, "query parameter owner is required"))
			return
		}
		v, ok := e.Group(owner, groupID)
		if !ok {
			writeJSONError(w, apiErr(http.StatusNotFound, CodeNotFound, "no group %q of owner %q", groupID, owner))
			return
		}
		if r.URL.Query().Get("history") == "1" {
			v.History, v.HistoryDropped = e.GroupHistory(owner, groupID)
		}
		writeJSON(v)
	case strings.HasPrefix(rest, "cards/") && r.Method == http.MethodGet:
		c, ok := e.Card(strings.TrimPrefix(rest, "cards/"))
		if !ok {
			writeJSONError(w, apiErr(http.StatusNotFound, CodeCardNotFound, "Requested card entity not found."))
			return
		}
		writeJSON(c.Raw)
	case rest == "stats" && r.Method == http.MethodGet:
		writeJSON(e.Stats())
	case rest == "fault" && r.Method == http.MethodPost:
		var fr FaultRequest
		body := http.MaxBytesReader(w, r.Body, 64<<10)
		if err := json.NewDecoder(body).Decode(&fr); err != nil {
			writeJSONError(w, apiErr(http.StatusBadRequest, CodeInvalidJSON, "the body is not a fault request"))
			return
		}
		f, err := fr.Fault(e.cfg.Now())
		if err != nil {
			writeJSONError(w, apiErr(http.StatusBadRequest, CodeInvalidJSON, "%s", err.Error()))
			return
		}
		e.SetFault(f)
		e.log.Info().Int("status", f.Status).Dur("delay", f.Delay).Int("every", f.Every).Msg("emulator: fault set")
		writeJSON(e.Stats())
	case rest == "fault" && r.Method == http.MethodDelete:
		e.ClearFault()
		e.log.Info().Msg("emulator: fault cleared")
		writeJSON(e.Stats())
	default:
		writeJSONError(w, apiErr(http.StatusNotFound, CodeNotFound, "no debug endpoint %s %s", r.Method, r.URL.Path))
	}
}
