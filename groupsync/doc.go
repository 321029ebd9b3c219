// Package groupsync is the domain of groupsync: the normalised CometChat group
// Event and the Job that carries it, the mapping of CometChat users and groups
// to Virgil identities, group state, and the pure planner that turns "CometChat
// says" into "the Virgil group must be".
//
// It imports the standard library only; every other package of the project
// builds on it.
package groupsync
