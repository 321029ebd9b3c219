package virgil_test

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"time"

	"github.com/groupsync/groupsync/virgil"
	"github.com/groupsync/groupsync/virgil/emulator"
)

// Example shows an owner keeping a Virgil group in step with a member list:
// create, add a member who registers late, remove one.
func Example() {
	appKey, _ := virgil.GenerateKey()
	service, _ := virgil.GenerateKey()
	gen := &virgil.JWTGenerator{AppID: "example-app", AppKeyID: "example-key", AppKey: appKey, TTL: 10 * time.Minute}
	emu, _ := emulator.New(emulator.Config{
		AppID: gen.AppID, AppKeyID: gen.AppKeyID, AppPublicKey: appKey.Public(), ServiceKey: service,
	})
	defer emu.Close()
	srv := httptest.NewServer(emu)
	defer srv.Close()
	ctx := context.Background()

	register := func(identity string) {
		key, _ := virgil.GenerateKey()
		card, _ := virgil.NewRawCard(key, identity, "", time.Now())
		_, _ = virgil.NewClient(srv.URL, gen.Source(identity)).PublishCard(ctx, card)
	}
	register("alice-uid")
	register("bob-uid")

	ownerKey, _ := virgil.GenerateKey()
	owner := virgil.NewOwner(virgil.NewClient(srv.URL, gen.Source(virgil.DefaultOwnerIdentity)), ownerKey, "",
		virgil.WithServiceKey(service.Public()))
	if _, err := owner.EnsureCard(ctx); err != nil {
		fmt.Println(err)
		return
	}
	const group = "example-group-guid"
	res, _ := owner.CreateGroup(ctx, group, []string{"alice-uid", "bob-uid", "carol-uid"})
	pending := res.Pending
	fmt.Println("pending:", pending)

	register("carol-uid")
	res, _ = owner.AddMembers(ctx, group, pending)
	pending = res.Pending
	fmt.Println("pending:", pending)

	_ = owner.Remove(ctx, group, []string{"bob-uid"})
	st, _ := owner.State(ctx, group)
	fmt.Println("members:", st.Members(owner.Identity()), "epochs:", st.Epochs)

	_, err := owner.CreateGroup(ctx, "short", nil)
	fmt.Println(errors.Is(err, virgil.ErrGroupIDTooShort))
	// Output:
	// pending: [carol-uid]
	// pending: []
	// members: [alice-uid carol-uid] epochs: [0 1]
	// true
}
