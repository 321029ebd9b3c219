package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/groupsync/groupsync/virgil"
	"github.com/groupsync/groupsync/virgil/emulator"
	"github.com/groupsync/groupsync/virgil/interop"
)

var (
	ownerCost     = flag.Bool("chaos.ownercost", false, "measure the Go owner against the official E3Kit owner (TestOwnerCost)")
	ownerCostJSON = flag.String("chaos.ownercost-json", "", "write TestOwnerCost's figures to this file")
	ownerCostReps = flag.Int("chaos.ownercost-reps", 5, "repetitions per case of TestOwnerCost")
)

// OwnerCost is the median wall time of one owner operation on a group.
type OwnerCost struct {
	Members int     `json:"members"` // group members after the operation (add) or before it (remove), owner excluded
	Op      string  `json:"op"`      // add or remove, one member
	GoMS    float64 `json:"go_ms"`
	E3KitMS float64 `json:"e3kit_ms"`
}

// TestOwnerCost times adding and removing one member on groups of 10, 50
// and 99 members, done by the project's Go owner and by the official E3Kit
// client as owner, both against the same in-process emulator. Each E3Kit
// figure includes one round trip to the Node.js driver over a pipe (well
// under a millisecond). It runs only with -chaos.ownercost.
func TestOwnerCost(t *testing.T) {
	if !*ownerCost {
		t.Skip("run with -chaos.ownercost to measure")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	appKey, err := virgil.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	appID, appKeyID := randomHex(16), randomHex(16)
	emu, err := emulator.New(emulator.Config{AppID: appID, AppKeyID: appKeyID, AppPublicKey: appKey.Public(),
		// E3Kit's owner-side remove searches every remaining participant in
		// one request; the emulator's default bound of 50 would refuse it on
		// a group of 99, so the comparison lifts it for both owners (ours
		// searches 50 at a time regardless).
		MaxSearchIdentities: 1000})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(emu)
	t.Cleanup(srv.Close)
	d := interop.Start(t, interop.Config{APIURL: srv.URL, App: &interop.App{AppID: appID, AppKeyID: appKeyID, AppKey: appKey.MarshalPKCS8Base64()}})

	const e3Owner, goOwnerID = "e3kit-owner-0001", "go-owner-000001"
	members := make([]string, 100)
	for i := range members {
		members[i] = fmt.Sprintf("cost-member-%03d", i)
	}
	for _, id := range append([]string{e3Owner}, members...) {
		if err := d.Register(ctx, id); err != nil {
			t.Fatalf("register %s: %v", id, err)
		}
	}
	ownerKey, err := virgil.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	gen := &virgil.JWTGenerator{AppID: appID, AppKeyID: appKeyID, AppKey: appKey}
	goOwner := virgil.NewOwner(virgil.NewClient(srv.URL, gen.Source(goOwnerID)), ownerKey, goOwnerID, virgil.WithServiceKey(emu.ServiceKey()))
	if _, err := goOwner.EnsureCard(ctx); err != nil {
		t.Fatal(err)
	}

	median := func(d []time.Duration) float64 {
		s := slices.Clone(d)
		slices.Sort(s)
		return float64(s[len(s)/2].Microseconds()) / 1000
	}
	seq := 0
	groupID := func() string { seq++; return fmt.Sprintf("cost-group-%06d", seq) }
	var results []OwnerCost
	for _, n := range []int{10, 50, 99} {
		for _, op := range []string{"add", "remove"} {
			var goT, e3T []time.Duration
			for range *ownerCostReps {
				// add: a group of n-1 members gets its n-th; remove: a group
				// of n members loses one.
				before := members[:n]
				if op == "add" {
					before = members[:n-1]
				}
				target := members[n-1 : n]
				id := groupID()
				if _, err := goOwner.CreateGroup(ctx, id, before); err != nil {
					t.Fatal(err)
				}
				start := time.Now()
				if op == "add" {
					_, err = goOwner.AddMembers(ctx, id, target)
				} else {
					err = goOwner.Remove(ctx, id, target)
				}
				goT = append(goT, time.Since(start))
				if err != nil {
					t.Fatalf("go owner %s on %d: %v", op, n, err)
				}

				// E3Kit's own local ticket store now and then misses a group
				// it just created ("Cannot read properties of undefined
				// (reading 'participants')" in addParticipants); such a
				// sample is taken again on a new group.
				for try := 1; ; try++ {
					id = groupID()
					if _, err := d.CreateGroup(ctx, e3Owner, id, before...); err != nil {
						t.Fatal(err)
					}
					start = time.Now()
					if op == "add" {
						_, err = d.Add(ctx, e3Owner, id, target...)
					} else {
						_, err = d.Remove(ctx, e3Owner, id, target...)
					}
					took := time.Since(start)
					if err != nil && try < 3 && strings.Contains(err.Error(), "Cannot read properties of undefined") {
						t.Logf("e3kit owner %s on %d: %v; taking the sample again", op, n, err)
						continue
					}
					if err != nil {
						t.Fatalf("e3kit owner %s on %d: %v", op, n, err)
					}
					e3T = append(e3T, took)
					break
				}
			}
			r := OwnerCost{Members: n, Op: op, GoMS: median(goT), E3KitMS: median(e3T)}
			results = append(results, r)
			fmt.Printf("owner %-6s group of %2d: Go %7.2f ms, E3Kit %7.2f ms (median of %d)\n", op, n, r.GoMS, r.E3KitMS, *ownerCostReps)
		}
	}
	if *ownerCostJSON != "" {
		b, _ := json.MarshalIndent(results, "", "  ")
		if err := os.WriteFile(*ownerCostJSON, append(b, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
