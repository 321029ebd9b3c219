package worker

import (
	"context"
	"errors"
	"fmt"

	"github.com/groupsync/groupsync/groupsync"
	"github.com/groupsync/groupsync/virgil"
)

// VirgilGroups adapts a *virgil.Owner to the planner's port, mapping
// CometChat uids and guids to Virgil identities with groupsync.Identities.
// Failures no retry can fix (a group past the participant limit, a group id
// Virgil refuses, an invalid identity) come back marked groupsync.Permanent.
// It is safe for concurrent use on different groups.
type VirgilGroups struct {
	owner *virgil.Owner
	ids   *groupsync.Identities
}

var _ groupsync.EncryptedGroups = (*VirgilGroups)(nil)

// NewVirgilGroups returns the port for owner, mapping names with ids.
func NewVirgilGroups(owner *virgil.Owner, ids *groupsync.Identities) *VirgilGroups {
	return &VirgilGroups{owner: owner, ids: ids}
}

// users maps uids to identities and returns the reverse mapping.
func (g *VirgilGroups) users(uids []string) ([]string, map[string]string) {
	idents := g.ids.Users(uids)
	back := make(map[string]string, len(uids))
	for i, id := range idents {
		back[id] = uids[i]
	}
	return idents, back
}

func unmap(idents []string, back map[string]string) []string {
	if len(idents) == 0 {
		return nil
	}
	out := make([]string, 0, len(idents))
	for _, id := range idents {
		if uid, ok := back[id]; ok {
			out = append(out, uid)
		}
	}
	return out
}

// classify marks the owner's errors that no retry can fix as permanent.
func classify(op, guid string, err error) error {
	if err == nil {
		return nil
	}
	if guid == "" {
		err = fmt.Errorf("worker: virgil %s: %w", op, err)
	} else {
		err = fmt.Errorf("worker: virgil %s group %s: %w", op, guid, err)
	}
	if errors.Is(err, virgil.ErrTooManyParticipants) || errors.Is(err, virgil.ErrGroupIDTooShort) ||
		errors.Is(err, virgil.ErrInvalidIdentity) || errors.Is(err, virgil.ErrOwnerCardMismatch) {
		return groupsync.Permanent(err)
	}
	return err
}

// Create implements groupsync.Groups.
func (g *VirgilGroups) Create(ctx context.Context, guid string, uids []string) (groupsync.Added, error) {
	idents, back := g.users(uids)
	res, err := g.owner.CreateGroup(ctx, g.ids.Group(guid), idents)
	if err != nil {
		return groupsync.Added{}, classify("create", guid, err)
	}
	return added(res, back), nil
}

// Add implements groupsync.Groups: a group missing in Virgil is created.
func (g *VirgilGroups) Add(ctx context.Context, guid string, uids []string) (groupsync.Added, error) {
	idents, back := g.users(uids)
	res, err := g.owner.AddMembers(ctx, g.ids.Group(guid), idents)
	if errors.Is(err, virgil.ErrGroupNotFound) {
		res, err = g.owner.CreateGroup(ctx, g.ids.Group(guid), idents)
	}
	if err != nil {
		return groupsync.Added{}, classify("add to", guid, err)
	}
	return added(res, back), nil
}

// added maps the owner's outcome back to uids.
func added(res virgil.Shared, back map[string]string) groupsync.Added {
	return groupsync.Added{Pending: unmap(res.Pending, back), Refused: unmapKeys(res.Refused, back), CardIDs: unmapKeys(res.CardIDs, back)}
}

// Remove implements groupsync.Groups.
func (g *VirgilGroups) Remove(ctx context.Context, guid string, uids []string) error {
	err := g.owner.Remove(ctx, g.ids.Group(guid), g.ids.Users(uids))
	if errors.Is(err, virgil.ErrGroupNotFound) {
		return nil
	}
	return classify("remove from", guid, err)
}

// Retain implements groupsync.Groups.
func (g *VirgilGroups) Retain(ctx context.Context, guid string, uids []string) (int, error) {
	gone, err := g.owner.Retain(ctx, g.ids.Group(guid), g.ids.Users(uids))
	return len(gone), classify("retain in", guid, err)
}

// Delete implements groupsync.Groups.
func (g *VirgilGroups) Delete(ctx context.Context, guid string) error {
	return classify("delete", guid, g.owner.Delete(ctx, g.ids.Group(guid)))
}

// CardIDs implements groupsync.Cards.
func (g *VirgilGroups) CardIDs(ctx context.Context, uids []string) (map[string]string, error) {
	idents, back := g.users(uids)
	ids, err := g.owner.CardIDs(ctx, idents)
	if err != nil {
		return nil, classify("read cards", "", err)
	}
	return unmapKeys(ids, back), nil
}

// unmapKeys maps the identities keying m back to uids.
func unmapKeys(m map[string]string, back map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for id, v := range m {
		if uid, ok := back[id]; ok {
			out[uid] = v
		}
	}
	return out
}

// ReAdd implements groupsync.Cards. A group missing in Virgil has nothing to
// re-add.
func (g *VirgilGroups) ReAdd(ctx context.Context, guid string, uids []string) error {
	err := g.owner.ReAdd(ctx, g.ids.Group(guid), g.ids.Users(uids))
	if errors.Is(err, virgil.ErrGroupNotFound) {
		return nil
	}
	return classify("re-add to", guid, err)
}
