package virgil_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/groupsync/groupsync/virgil"
)

func BenchmarkSignThenEncryptTicket(b *testing.B) {
	kf := loadKeys(b)
	owner := mustKey(b, kf, "owner")
	sid, _ := virgil.SessionID("benchmark-group-id")
	msg, err := virgil.NewEpochMessage(sid, 0, nil)
	if err != nil {
		b.Fatal(err)
	}
	data := msg.Marshal()
	for _, n := range []int{1, 10, 99} {
		recipients := []*virgil.PublicKey{owner.Public()}
		for range n {
			k, err := virgil.GenerateKey()
			if err != nil {
				b.Fatal(err)
			}
			recipients = append(recipients, k.Public())
		}
		b.Run(fmt.Sprintf("Recipients%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, _, err := virgil.SignThenEncrypt(data, owner, recipients); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkDecryptThenVerifyTicket(b *testing.B) {
	kf := loadKeys(b)
	owner := mustKey(b, kf, "owner")
	recipients := []*virgil.PublicKey{owner.Public()}
	for range 99 {
		k, _ := virgil.GenerateKey()
		recipients = append(recipients, k.Public())
	}
	meta, value, err := virgil.SignThenEncrypt(make([]byte, 74), owner, recipients)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := virgil.DecryptThenVerify(meta, value, owner, owner.Public()); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkOwner99 runs owner operations on a group of 99 members against a
// local server.
func BenchmarkOwner99(b *testing.B) {
	ob := setupOwner(b)
	ctx := context.Background()
	members := make([]string, 99)
	for i := range members {
		members[i] = fmt.Sprintf("member-%03d", i)
		ob.register(b, members[i])
	}
	group := 0
	newGroup := func() string {
		group++
		id := fmt.Sprintf("bench-group-%06d", group)
		if _, err := ob.owner.CreateGroup(ctx, id, members[:98]); err != nil {
			b.Fatal(err)
		}
		return id
	}
	b.Run("Create", func(b *testing.B) {
		for b.Loop() {
			group++
			if _, err := ob.owner.CreateGroup(ctx, fmt.Sprintf("bench-group-%06d", group), members); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("AddOne", func(b *testing.B) {
		for b.Loop() {
			b.StopTimer()
			id := newGroup()
			b.StartTimer()
			if _, err := ob.owner.AddMembers(ctx, id, members[98:]); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("RemoveOne", func(b *testing.B) {
		for b.Loop() {
			b.StopTimer()
			id := newGroup()
			b.StartTimer()
			if err := ob.owner.Remove(ctx, id, members[:1]); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("State", func(b *testing.B) {
		id := newGroup()
		for b.Loop() {
			if _, err := ob.owner.State(ctx, id); err != nil {
				b.Fatal(err)
			}
		}
	})
}
