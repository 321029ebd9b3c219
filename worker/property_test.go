package worker_test

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/groupsync/groupsync/groupsync"
	"github.com/groupsync/groupsync/queue"
)

// scenario is one random group life: its events in CometChat order, the
// time each happened, and CometChat's final state.
type scenario struct {
	guid    string
	events  []groupsync.Event
	times   []int64
	deleted bool
	members []string
}

func genGroupLife(r *rand.Rand, guid string, users []string) scenario {
	t := int64(1_700_000_000 + r.IntN(1000))
	created := t
	sc := scenario{guid: guid}
	in := map[string]bool{}
	add := func(e groupsync.Event) {
		sc.events = append(sc.events, e)
		sc.times = append(sc.times, t)
	}
	mk := func(trig groupsync.Trigger, act groupsync.Action, uids ...string) groupsync.Event {
		e := groupsync.Event{Trigger: trig, Action: act, GUID: guid, CreatedAt: created, UpdatedAt: t, MembersCount: -1}
		for _, u := range uids {
			e.Members = append(e.Members, groupsync.Member{UID: u})
		}
		return e
	}
	creator := users[r.IntN(len(users))]
	c := mk(groupsync.TriggerGroupCreated, groupsync.ActionCreate, creator)
	c.UpdatedAt = 0
	add(c)
	in[creator] = true
	for range 2 + r.IntN(6) {
		t += 1 + int64(r.IntN(8))
		u := users[r.IntN(len(users))]
		var cur []string
		for m := range in {
			cur = append(cur, m)
		}
		sort.Strings(cur)
		switch k := r.IntN(10); {
		case k < 5:
			if r.IntN(2) == 0 {
				e := mk(groupsync.TriggerMemberAdded, groupsync.ActionAdd)
				e.UpdatedAt = 0
				e.Members = []groupsync.Member{{UID: u, JoinedAt: t}}
				add(e)
			} else {
				add(mk(groupsync.TriggerMemberJoined, groupsync.ActionAdd, u))
			}
			in[u] = true
		case k < 8 && len(cur) > 0:
			v := cur[r.IntN(len(cur))]
			trig := []groupsync.Trigger{groupsync.TriggerMemberKicked, groupsync.TriggerMemberBanned, groupsync.TriggerMemberLeft}[r.IntN(3)]
			add(mk(trig, groupsync.ActionRemove, v))
			delete(in, v)
		case k < 9 && len(cur) > 0:
			add(mk(groupsync.TriggerMemberScopeChanged, groupsync.ActionEnsure, cur[r.IntN(len(cur))]))
		default:
			add(mk(groupsync.TriggerGroupUpdated, groupsync.ActionNone))
		}
	}
	if r.IntN(6) == 0 {
		t += 1 + int64(r.IntN(8))
		add(mk(groupsync.TriggerGroupDeleted, groupsync.ActionDelete))
		sc.deleted = true
		return sc
	}
	for m := range in {
		sc.members = append(sc.members, m)
	}
	sort.Strings(sc.members)
	return sc
}

type arrival struct {
	at   int64
	tie  int
	job  groupsync.Job
	copy bool // a second copy that only the worker can de-duplicate
}

// TestPropertyConvergesAgainstVirgil: hundreds of random group lives, their
// webhooks delayed by CometChat's retries (+10 s, +30 s, so reordered) and
// partly duplicated, go through the queue, the pool and the real owner; every
// Virgil group ends with CometChat's final members, and deleted groups are
// gone.
func TestPropertyConvergesAgainstVirgil(t *testing.T) {
	if testing.Short() {
		t.Skip("property test against the emulator skipped in -short mode")
	}
	e := newEnv(t, envOptions{queue: func(c *queue.Config) { c.Partitions = 8 }})
	users := []string{"ann", "ben", "cat", "dan", "eve", "fay"}
	e.register(users...)
	cfg := e.poolConfig()
	e.startPool(cfg, nil, nil, nil)
	e.startPool(cfg, nil, nil, nil) // two processes share the partitions

	seed := uint64(time.Now().UnixNano())
	r := rand.New(rand.NewPCG(seed, 3))
	t.Logf("seed %d", seed)
	const cases = 200
	var scs []scenario
	var arrivals []arrival
	for i := range cases {
		sc := genGroupLife(r, fmt.Sprintf("prop-%03d", i), users)
		scs = append(scs, sc)
		for k, ev := range sc.events {
			j := job(ev)
			d := []int64{0, 0, 0, 10, 30}[r.IntN(5)]
			arrivals = append(arrivals, arrival{at: sc.times[k] + d, tie: r.Int(), job: j})
			if r.IntN(5) == 0 {
				arrivals = append(arrivals, arrival{at: sc.times[k] + d + []int64{10, 30}[r.IntN(2)], tie: r.Int(), job: j, copy: r.IntN(2) == 0})
			}
		}
	}
	sort.Slice(arrivals, func(i, j int) bool {
		if arrivals[i].at != arrivals[j].at {
			return arrivals[i].at < arrivals[j].at
		}
		return arrivals[i].tie < arrivals[j].tie
	})
	for _, a := range arrivals {
		if a.copy {
			e.publishCopy(a.job)
		} else {
			e.publish(a.job)
		}
	}
	start := time.Now()
	eventually(t, 90*time.Second, func() (bool, string) {
		var wrong []string
		for _, sc := range scs {
			v, ok := e.view(sc.guid)
			switch {
			case sc.deleted && ok:
				wrong = append(wrong, sc.guid+" should be deleted")
			case !sc.deleted && (!ok || !slices.Equal(v.Participants, e.want(sc.members...))):
				wrong = append(wrong, fmt.Sprintf("%s: [%s], want [%s]", sc.guid, e.names(v.Participants), strings.Join(sc.members, ",")))
			}
		}
		if len(wrong) > 3 {
			wrong = append(wrong[:3], fmt.Sprintf("and %d more", len(wrong)-3))
		}
		return len(wrong) == 0, fmt.Sprintf("seed %d: %s", seed, strings.Join(wrong, "; "))
	})
	e.waitSettled()
	t.Logf("%d groups, %d jobs converged in %s", cases, len(arrivals), time.Since(start).Round(time.Millisecond))
	// Settled state must still match (nothing ran after convergence).
	for _, sc := range scs {
		v, ok := e.view(sc.guid)
		if sc.deleted == ok || (!sc.deleted && !slices.Equal(v.Participants, e.want(sc.members...))) {
			t.Fatalf("seed %d: group %s changed after convergence: [%s]", seed, sc.guid, e.names(v.Participants))
		}
	}
}
