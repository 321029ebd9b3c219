package virgil

import (
	"context"
	"errors"
	"fmt"
	"strconv"
)

// RotateKey replaces the owner's key: it publishes a card for newKey that
// replaces the card of the current key, then re-signs and re-encrypts every
// ticket of groups with newKey (members verify tickets with the owner's
// current card). It returns the Owner to use from then on. When it fails,
// call it again on the same Owner with the same arguments: the card step is
// skipped once the card exists and tickets already made with newKey are left
// as they are. Groups not listed keep tickets that members can no longer
// verify.
func (o *Owner) RotateKey(ctx context.Context, newKey *PrivateKey, groups []string) (*Owner, error) {
	cards, err := o.client.SearchCards(ctx, []string{o.identity})
	if err != nil {
		return nil, fmt.Errorf("virgil: rotate owner key: %w", err)
	}
	cards = LinkCards(cards)
	var current, replaced *Card
	for _, c := range cards {
		switch {
		case c.PublicKey.Equal(newKey.Public()):
			current = c
		case c.PublicKey.Equal(o.key.Public()):
			replaced = c
		}
	}
	if current == nil {
		if replaced == nil {
			return nil, fmt.Errorf("virgil: rotate owner key of %q: %w", o.identity, ErrOwnerCardMismatch)
		}
		raw, err := NewRawCard(newKey, o.identity, replaced.ID, o.now())
		if err != nil {
			return nil, err
		}
		if _, err := o.client.PublishCard(ctx, raw); err != nil {
			return nil, fmt.Errorf("virgil: rotate owner key: publish card: %w", err)
		}
	}
	next := *o
	next.key = newKey
	for _, g := range groups {
		if err := next.reKey(ctx, g, o.key); err != nil {
			return nil, fmt.Errorf("virgil: rotate owner key: group %q: %w", g, err)
		}
	}
	return &next, nil
}

// reKey re-encrypts every ticket of the group that is not yet made with the
// owner's key, opening it with old.
func (o *Owner) reKey(ctx context.Context, groupID string, old *PrivateKey) error {
	path, err := SessionPath(groupID)
	if err != nil {
		return err
	}
	sid, _ := SessionID(groupID)
	epochs, err := o.epochs(ctx, path)
	if err != nil {
		return err
	}
	prev := *o
	prev.key = old
	for _, epoch := range epochs {
		for attempt := 1; ; attempt++ {
			if _, err := o.pull(ctx, path, sid, epoch); err == nil {
				break // already made with the new key (or gone)
			} else if !errors.Is(err, ErrInvalidTicket) {
				return err
			}
			t, err := prev.pull(ctx, path, sid, epoch)
			if err != nil {
				return err
			}
			if t == nil {
				break
			}
			ids := make([]string, 0, len(t.identities))
			for _, id := range t.identities {
				if id != o.identity {
					ids = append(ids, id)
				}
			}
			mc, err := o.cardsOf(ctx, ids)
			if err != nil {
				return err
			}
			ready, _ := mc.split(ids)
			err = o.push(ctx, path, t.msg, append([]string{o.identity}, ready...), mc, ready, t.hash)
			if errors.Is(err, ErrInvalidPreviousHash) && attempt < pushAttempts {
				continue
			}
			if err != nil {
				return fmt.Errorf("epoch %s: %w", strconv.FormatUint(uint64(epoch), 10), err)
			}
			break
		}
	}
	return nil
}
