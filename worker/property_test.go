package worker_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/groupsync/groupsync/groupsync/groupsynctest"
	"github.com/groupsync/groupsync/queue"
	"github.com/groupsync/groupsync/virgil"
	"github.com/groupsync/groupsync/worker"
)

// TestPropertyConvergesAgainstVirgil: hundreds of random group lives, with
// identical repeated adds and forged (clamped) times, partly delivered
// twice, go through the queue, two pools and the real owner. Reordered: the
// webhooks are delayed by CometChat's retries (+10 s, +30 s), and CometChat's
// REST API answers the rechecks. InOrder: nothing is reordered and there is
// no REST API. The verdict is what members can decrypt: in every group,
// each CometChat member opens the newest epoch with their own key and every
// other user cannot; deleted groups are gone.
func TestPropertyConvergesAgainstVirgil(t *testing.T) {
	if testing.Short() {
		t.Skip("property test against the emulator skipped in -short mode")
	}
	for _, inOrder := range []bool{false, true} {
		name := "Reordered"
		if inOrder {
			name = "InOrder"
		}
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, envOptions{queue: func(c *queue.Config) { c.Partitions = 8 }})
			users := []string{"ann", "ben", "cat", "dan", "eve", "fay"}
			e.register(users...)
			seed := uint64(time.Now().UnixNano())
			t.Logf("seed %d", seed)
			scs, deliveries := propertyHistories(rand.New(rand.NewPCG(seed, 3)), 150, users, inOrder)
			cfg := e.poolConfig()
			if !inOrder {
				cfg.Reconciler = truthOf(scs)
			}
			e.startPool(cfg, nil, nil, nil)
			e.startPool(cfg, nil, nil, nil) // two processes share the partitions
			start := time.Now()
			e.publishDeliveries(rand.New(rand.NewPCG(seed, 4)), deliveries)
			eventually(t, 90*time.Second, func() (bool, string) {
				wrong := e.checkByDecryption(scs, users)
				return len(wrong) == 0, fmt.Sprintf("seed %d: %s", seed, summary(wrong))
			})
			e.waitSettled()
			t.Logf("%d groups, %d jobs converged in %s", len(scs), len(deliveries), time.Since(start).Round(time.Millisecond))
			if wrong := e.checkByDecryption(scs, users); len(wrong) > 0 {
				t.Fatalf("seed %d: changed after convergence: %s", seed, summary(wrong))
			}
		})
	}
}

// TestPropertyVerdictSeesBrokenOwner: an owner that encrypts every ticket
// for itself alone, while sharing it with the members as it should, keeps
// the participant lists right; the verdict by decryption fails it.
func TestPropertyVerdictSeesBrokenOwner(t *testing.T) {
	e := newEnv(t, envOptions{})
	users := []string{"ann", "ben", "cat"}
	e.register(users...)
	scs, deliveries := propertyHistories(rand.New(rand.NewPCG(1, 2)), 10, users, false)
	broken := virgil.NewOwner(
		virgil.NewClient(e.url, e.gen.Source(ownerID), virgil.WithTimeout(10*time.Second),
			virgil.WithHTTPClient(&http.Client{Transport: ownerOnly{key: e.ownerKey}})),
		e.ownerKey, ownerID, virgil.WithServiceKey(e.emu.ServiceKey()))
	cfg := e.poolConfig()
	cfg.Reconciler = truthOf(scs)
	e.startPool(cfg, nil, nil, worker.NewVirgilGroups(broken, e.ids))
	e.publishDeliveries(rand.New(rand.NewPCG(1, 3)), deliveries)
	e.waitSettled()
	// The participant lists are right...
	for _, sc := range scs {
		v, ok := e.view(sc.GUID)
		if sc.Deleted == ok || (!sc.Deleted && !slices.Equal(v.Participants, e.want(sc.Members...))) {
			t.Fatalf("group %s: participants [%s], want [%s]: the broken owner must get the lists right", sc.GUID, e.names(v.Participants), strings.Join(sc.Members, ","))
		}
	}
	// ...and members cannot decrypt.
	if wrong := e.checkByDecryption(scs, users); len(wrong) == 0 {
		t.Fatal("the verdict by decryption passed an owner that encrypts every ticket for itself alone")
	} else {
		t.Logf("verdict: %s", summary(wrong))
	}
}

// propertyHistories makes n group lives that happened in the last ten
// minutes and their deliveries, in arrival order (in CometChat's order when
// inOrder is set).
func propertyHistories(r *rand.Rand, n int, users []string, inOrder bool) ([]groupsynctest.Scenario, []groupsynctest.Delivery) {
	var scs []groupsynctest.Scenario
	var all []groupsynctest.Delivery
	now := time.Now().Unix()
	for i := range n {
		sc := groupsynctest.Generate(r, fmt.Sprintf("prop-%03d", i), groupsynctest.Options{
			Users: users, Start: now - 600 + int64(r.IntN(300)), Steps: 10, DeleteOneIn: 6, ForgeOneIn: 15})
		scs = append(scs, sc)
		all = append(all, groupsynctest.Deliver(r, sc, groupsynctest.DeliverOptions{InOrder: inOrder})...)
	}
	groupsynctest.SortDeliveries(all)
	return scs, all
}

// truthOf answers reconcile reads with the groups as the histories leave
// them: every event happened before the workers read.
func truthOf(scs []groupsynctest.Scenario) *fakeCometChat {
	cc := &fakeCometChat{groups: map[string][]string{}}
	for _, sc := range scs {
		if !sc.Deleted {
			cc.groups[sc.GUID] = slices.Clone(sc.Members)
		}
	}
	return cc
}

// publishDeliveries stores every delivery as a job of its own, as the
// webhook receiver does; some jobs are also stored a second time under
// another Nats-Msg-Id (a copy only the done marks can catch).
func (e *env) publishDeliveries(r *rand.Rand, ds []groupsynctest.Delivery) {
	e.tb.Helper()
	for _, d := range ds {
		j := job(d.Event)
		e.publish(j)
		if r.IntN(10) == 0 {
			e.publishCopy(j)
		}
	}
}

// checkByDecryption returns what members cannot do that they should, or
// can do that they should not: in each group CometChat has, every member
// opens the newest epoch with their own key and every other user of users
// cannot; a deleted group is gone.
func (e *env) checkByDecryption(scs []groupsynctest.Scenario, users []string) []string {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var wrong []string
	for _, sc := range scs {
		_, exists := e.view(sc.GUID)
		if sc.Deleted {
			if exists {
				wrong = append(wrong, sc.GUID+" should be deleted")
			}
			continue
		}
		for _, u := range users {
			err := e.canReadNewest(ctx, u, sc.GUID)
			switch member := slices.Contains(sc.Members, u); {
			case member && err != nil:
				wrong = append(wrong, fmt.Sprintf("%s: member %s cannot decrypt: %v", sc.GUID, u, err))
			case !member && err == nil:
				wrong = append(wrong, fmt.Sprintf("%s: %s, not a member, decrypts", sc.GUID, u))
			}
		}
	}
	return wrong
}

func summary(wrong []string) string {
	if len(wrong) > 3 {
		return strings.Join(wrong[:3], "; ") + fmt.Sprintf("; and %d more", len(wrong)-3)
	}
	return strings.Join(wrong, "; ")
}

// ownerOnly is an owner's HTTP transport that breaks it: every ticket it
// pushes is re-encrypted for the owner alone, while the push still names
// (and so shares it with) every participant.
type ownerOnly struct{ key *virgil.PrivateKey }

func (o ownerOnly) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Method == http.MethodPost && strings.HasSuffix(req.URL.Path, "/keyknox/v2/push") && req.Body != nil {
		b, err := io.ReadAll(req.Body)
		if err != nil {
			return nil, err
		}
		var body map[string]any
		if err := json.Unmarshal(b, &body); err != nil {
			return nil, err
		}
		var meta, value []byte
		if err := remarshal(body["meta"], &meta); err != nil {
			return nil, err
		}
		if err := remarshal(body["value"], &value); err != nil {
			return nil, err
		}
		plain, err := virgil.DecryptThenVerify(meta, value, o.key, o.key.Public())
		if err != nil {
			return nil, err
		}
		if meta, value, err = virgil.SignThenEncrypt(plain, o.key, []*virgil.PublicKey{o.key.Public()}); err != nil {
			return nil, err
		}
		body["meta"], body["value"] = meta, value
		if b, err = json.Marshal(body); err != nil {
			return nil, err
		}
		req = req.Clone(req.Context())
		req.Body = io.NopCloser(bytes.NewReader(b))
		req.ContentLength = int64(len(b))
	}
	return http.DefaultTransport.RoundTrip(req)
}

func remarshal(v any, out any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, out)
}
