package groupsync

import "time"

// Trigger is a CometChat webhook trigger id, such as "group_member_added".
type Trigger string

// The CometChat group triggers groupsync understands. TriggerMemberRemoved appears
// in one CometChat overview table only; it is treated as a kick.
const (
	TriggerGroupCreated       Trigger = "group_created"
	TriggerGroupUpdated       Trigger = "group_updated"
	TriggerGroupDeleted       Trigger = "group_deleted"
	TriggerMemberAdded        Trigger = "group_member_added"
	TriggerMemberJoined       Trigger = "group_member_joined"
	TriggerMemberKicked       Trigger = "group_member_kicked"
	TriggerMemberRemoved      Trigger = "group_member_removed"
	TriggerMemberBanned       Trigger = "group_member_banned"
	TriggerMemberUnbanned     Trigger = "group_member_unbanned"
	TriggerMemberLeft         Trigger = "group_member_left"
	TriggerMemberScopeChanged Trigger = "group_member_scope_changed"
	TriggerOwnerTransferred   Trigger = "group_owner_transferred"

	// TriggerReconcile is not a CometChat trigger: it marks a job made by
	// `groupsync reconcile`, whose Action is ActionReconcile. The webhook
	// receiver never accepts it from outside.
	TriggerReconcile Trigger = "groupsync_reconcile"
)

// Action is what an event means for the Virgil group, independent of how
// CometChat phrased it.
type Action string

// The actions an event can require.
const (
	// ActionCreate creates the group with Event.Members.
	ActionCreate Action = "create"
	// ActionAdd makes Event.Members participants.
	ActionAdd Action = "add"
	// ActionRemove removes Event.Members (new epoch for the rest).
	ActionRemove Action = "remove"
	// ActionDelete deletes the group.
	ActionDelete Action = "delete"
	// ActionEnsure makes sure Event.Members are participants without a key change
	// (scope change, owner transfer).
	ActionEnsure Action = "ensure"
	// ActionNone changes nothing in Virgil (group updated, member unbanned).
	ActionNone Action = "none"
	// ActionReconcile asks for the group's membership to be read from CometChat's
	// REST API because the event cannot be trusted (ban/unban whose member is the actor).
	ActionReconcile Action = "reconcile"
)

// Member is one CometChat user named by an event.
type Member struct {
	// UID is the CometChat user id, lower case.
	UID string `json:"uid"`
	// Scope is admin, moderator or participant when the event carries it.
	Scope string `json:"scope,omitempty"`
	// OldScope is the previous scope on scope changes.
	OldScope string `json:"old_scope,omitempty"`
	// JoinedAt is the Unix time in seconds the member joined, when known.
	JoinedAt int64 `json:"joined_at,omitempty"`
}

// Event is a normalised CometChat group event: only what groupsync needs, in a
// canonical form (members sorted by UID, UIDs and GUID lower case).
type Event struct {
	// Trigger is the CometChat trigger id as received.
	Trigger Trigger `json:"trigger"`
	// Action is what the trigger means for the Virgil group.
	Action Action `json:"action"`
	// AppID is the CometChat app id.
	AppID string `json:"app_id"`
	// Region is the CometChat app region, when sent.
	Region string `json:"region,omitempty"`
	// Webhook is the id of the CometChat webhook configuration that fired.
	Webhook string `json:"webhook,omitempty"`
	// GUID is the CometChat group id.
	GUID string `json:"guid"`
	// Owner is the CometChat owner uid of the group after the event, when sent.
	Owner string `json:"owner,omitempty"`
	// OldOwner is the previous owner on ownership transfer.
	OldOwner string `json:"old_owner,omitempty"`
	// Members are the users the event is about, sorted by UID, without duplicates.
	Members []Member `json:"members,omitempty"`
	// By is the uid of the actor, when sent.
	By string `json:"by,omitempty"`
	// CreatedAt is data.group.createdAt (Unix seconds), 0 if absent.
	CreatedAt int64 `json:"created_at,omitempty"`
	// UpdatedAt is data.group.updatedAt (Unix seconds), 0 if absent.
	UpdatedAt int64 `json:"updated_at,omitempty"`
	// MembersCount is data.group.membersCount after the change, -1 if absent.
	MembersCount int `json:"members_count"`
	// Received is when the webhook receiver accepted this delivery (Unix
	// seconds), 0 for events groupsync made itself. It is no part of the
	// event's content key: it tells the planner whether two events arrived
	// close enough together for a CometChat retry to have swapped them.
	Received int64 `json:"received,omitempty"`
	// Clamped reports that some of the body's times lay beyond the time the
	// event was received plus the allowed clock skew; they were set to 0, so
	// the event is ordered as one without a time (see ClampTimes).
	Clamped bool `json:"clamped,omitempty"`
}

// UIDs returns the UIDs of e.Members in their (sorted) order.
func (e Event) UIDs() []string {
	uids := make([]string, len(e.Members))
	for i, m := range e.Members {
		uids[i] = m.UID
	}
	return uids
}

// Job is the unit of work carried by the queue: one normalised event plus what
// the receiver knew about its delivery.
type Job struct {
	// ID names this delivery of the event: the event's content key
	// (IdempotencyKey), a dot and a random part, so two deliveries of the
	// same content are two jobs (see NewJob). It is the JetStream
	// Nats-Msg-Id and the key of the worker's lease and done mark.
	ID string `json:"id"`
	// Event is the normalised event.
	Event Event `json:"event"`
	// BodySHA256 is the hex SHA-256 of the raw webhook body, a second key for
	// byte-identical retries.
	BodySHA256 string `json:"body_sha256,omitempty"`
	// ReceivedAt is when the receiver accepted the webhook.
	ReceivedAt time.Time `json:"received_at"`
}
