// Package membership reads what the worker pool needs of CometChat through
// the CometChat REST client: a group's members (worker.Reconciler), its
// member count alone (worker.MemberCounter) and the app's groups
// (worker.GroupLister). It is the one adapter from package cometchat to
// those ports, for the binary and the worker's tests alike; neither
// cometchat nor worker imports the other.
package membership

import (
	"context"
	"errors"

	"github.com/groupsync/groupsync/cometchat"
	"github.com/groupsync/groupsync/worker"
)

// CometChat adapts a CometChat REST client to the worker's ports. A group
// CometChat does not know reads as absent (false), not as an error; only an
// answer that says so (404 with code ERR_GUID_NOT_FOUND) does: any other
// 404 (an endpoint missing, a proxy's page) is an error, since an absent
// group has its encrypted group deleted.
type CometChat struct {
	// Client is the REST client it reads with.
	Client *cometchat.Client
}

var (
	_ worker.Reconciler    = CometChat{}
	_ worker.MemberCounter = CometChat{}
	_ worker.GroupLister   = CometChat{}
)

// Members implements worker.Reconciler: the uids of the group's members.
func (m CometChat) Members(ctx context.Context, guid string) ([]string, bool, error) {
	members, err := m.Client.Members(ctx, guid)
	if groupNotFound(err) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	uids := make([]string, len(members))
	for i, mb := range members {
		uids[i] = mb.UID
	}
	return uids, true, nil
}

// MemberCount implements worker.MemberCounter.
func (m CometChat) MemberCount(ctx context.Context, guid string) (int, bool, error) {
	g, err := m.Client.Group(ctx, guid)
	if groupNotFound(err) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, err
	}
	return g.MembersCount, true, nil
}

// codeGroupNotFound is CometChat's error code for a group it does not have.
const codeGroupNotFound = "ERR_GUID_NOT_FOUND"

// groupNotFound reports whether err is CometChat's answer that the group
// does not exist.
func groupNotFound(err error) bool {
	var ae *cometchat.APIError
	return errors.Is(err, cometchat.ErrNotFound) && errors.As(err, &ae) && ae.Code == codeGroupNotFound
}

// Groups implements worker.GroupLister: the app's groups with their member
// counts, a page at a time.
func (m CometChat) Groups(ctx context.Context, fn func([]worker.GroupCount) error) error {
	return m.Client.Groups(ctx, func(page []cometchat.Group) error {
		out := make([]worker.GroupCount, len(page))
		for i, g := range page {
			out[i] = worker.GroupCount{GUID: g.GUID, Members: g.MembersCount}
		}
		return fn(out)
	})
}
