package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/groupsync/groupsync/groupsync"
	"github.com/groupsync/groupsync/groupsync/groupsynctest"
)

// Triggers the generator sends, by what they do to a member.
var (
	addTriggers    = []string{"group_member_added", "group_member_joined"}
	removeTriggers = []string{"group_member_kicked", "group_member_left", "group_member_banned"}
)

// Event is one CometChat event as the generator made it.
type Event struct {
	GUID    string
	Trigger string
	UIDs    []string // members the event names
	In      bool     // whether they are members afterwards
	At      int64    // when it happened in CometChat (the group's createdAt for group_created)
	Timed   bool     // the body carries At (group_member_added carries no time; a forged body a false one)
	Body    []byte
	JobID   string // a job id of the body; its content key (groupsync.ContentKey) is shared by every delivery

	Accepted   bool      // answered 200 at least once
	AcceptedAt time.Time // when the first 200 came
	// Lost marks an event CometChat made but whose webhook never came (it
	// gave up retrying): only the scheduled reconcile can bring it in.
	Lost bool
}

// groupOwner is the CometChat uid that created every group and acts in
// every event that names an actor; it is never a member the generator moves.
func groupOwner(guid string) string { return "owner-" + guid }

// Body times of newEvent besides the event's own.
const (
	untimed = -1 // no updatedAt, as CometChat's group_member_added bodies
	forged  = -2 // an updatedAt far in the future, which groupsync clamps
)

// newEvent builds a CometChat "Webhooks" (v2) body of trigger for uids,
// which happened at at; bodyAt is the body's updatedAt: at, untimed or
// forged.
func newEvent(trigger, guid string, uids []string, createdAt, at, bodyAt int64) *Event {
	members := map[string]any{}
	for _, u := range uids {
		members[u] = map[string]any{"uid": u, "name": "User " + u, "status": "offline", "role": "default", "lastActiveAt": at - 60}
	}
	group := map[string]any{
		"guid": guid, "name": "Group " + guid, "type": "private", "conversationId": "group_" + guid,
		"createdAt": createdAt, "owner": groupOwner(guid), "membersCount": len(uids),
	}
	data := map[string]any{"group": group, "members": members}
	in := true
	if trigger == "group_created" {
		group["joinedAt"] = createdAt
		group["hasJoined"] = true
	} else {
		switch bodyAt {
		case untimed:
		case forged:
			group["updatedAt"] = groupsynctest.ForgedTime
		default:
			group["updatedAt"] = bodyAt
		}
		if trigger != "group_member_joined" && trigger != "group_member_left" {
			data["by"] = map[string]any{"uid": groupOwner(guid), "name": "Owner", "status": "available", "role": "default"}
		}
		in = slices.Contains(addTriggers, trigger)
	}
	body, _ := json.Marshal(map[string]any{"trigger": trigger, "appId": cometAppID, "region": "eu", "webhook": "groupsync", "data": data})
	job, err := groupsync.NewJob(body, time.Now())
	if err != nil {
		panic(fmt.Sprintf("generated an invalid body: %v: %s", err, body))
	}
	timed := trigger == "group_created" || bodyAt >= 0
	return &Event{GUID: guid, Trigger: trigger, UIDs: uids, In: in, At: at, Timed: timed, Body: body, JobID: job.ID}
}

// Poster delivers webhooks as CometChat does with "retry on failure": a
// delivery that is not answered 200 is sent again, here sooner and more often
// than CometChat's +10 s and +30 s so that a run stays short.
type Poster struct {
	URL, User, Password string
	// URLs, when it has more than one entry, are serve processes behind
	// one name: each delivery goes to the next, so a retry reaches another
	// serve when one is down, as behind a load balancer.
	URLs   []string
	Client *http.Client
	GiveUp time.Duration // stop retrying one event after this long

	next     atomic.Uint64 // which of URLs the next event goes to first
	mu       sync.Mutex
	statuses map[int]int // answer status -> count, over every attempt
	errors   int         // attempts without an answer
}

// Post sends body until it is answered 200 or GiveUp passes; it returns
// whether and when it was answered 200.
func (p *Poster) Post(body []byte) (bool, time.Time) {
	deadline := time.Now().Add(p.GiveUp)
	wait := 100 * time.Millisecond
	attempt := p.next.Add(1)
	for {
		code, err := p.onceTo(p.url(attempt), body, p.User, p.Password, true)
		attempt++ // a retry goes to the next serve
		p.mu.Lock()
		if p.statuses == nil {
			p.statuses = map[int]int{}
		}
		if err != nil {
			p.errors++
		} else {
			p.statuses[code]++
		}
		p.mu.Unlock()
		if err == nil && code == http.StatusOK {
			return true, time.Now()
		}
		if time.Now().After(deadline) {
			return false, time.Time{}
		}
		time.Sleep(wait)
		wait = min(2*wait, 2*time.Second)
	}
}

// once sends one delivery; auth false sends no Authorization header.
func (p *Poster) once(body []byte, user, password string, auth bool) (int, error) {
	return p.onceTo(p.URL, body, user, password, auth)
}

// url returns the serve URL of an event's attempt-th delivery: events
// start on the serves in turn, and each retry moves to the next one.
func (p *Poster) url(attempt uint64) string {
	if len(p.URLs) < 2 {
		return p.URL
	}
	return p.URLs[int(attempt%uint64(len(p.URLs)))]
}

// onceTo is once to url.
func (p *Poster) onceTo(url string, body []byte, user, password string, auth bool) (int, error) {
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	if auth {
		req.SetBasicAuth(user, password)
	}
	resp, err := p.Client.Do(req)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}

// Statuses returns the count of answers by status and of failed attempts.
func (p *Poster) Statuses() (map[int]int, int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := map[int]int{}
	for k, v := range p.statuses {
		out[k] = v
	}
	return out, p.errors
}

// Expected returns, for each group, the CometChat uids that the accepted
// (and lost) events make members (groupsynctest.Expect: per member, the
// event that happened last decides), together with that deciding event per
// (group, uid).
func Expected(events []*Event) (members map[string][]string, deciders map[[2]string]*Event) {
	var facts []groupsynctest.Fact
	var accepted []*Event
	for _, e := range events {
		if e.Accepted || e.Lost {
			facts = append(facts, groupsynctest.Fact{GUID: e.GUID, UIDs: e.UIDs, In: e.In, At: e.At, Moves: true})
			accepted = append(accepted, e)
		}
	}
	exp := groupsynctest.Expect(facts)
	deciders = map[[2]string]*Event{}
	for k, i := range exp.Decider {
		deciders[k] = accepted[i]
	}
	return exp.Members, deciders
}
