// Package emulator is a Virgil-compatible HTTP service (Cards v5 and Keyknox
// v2) for dev mode and tests. The official E3Kit clients accept it as their
// apiUrl, and the project's own virgil.Client talks to it exactly as to the
// real service.
//
// # What it serves
//
// Every Virgil endpoint needs "Authorization: Virgil <jwt>", verified with
// the configured application keys (virgil.VerifyJWT): a missing header is
// 401/20300, a bad token 401/20303, an expired one 401/20304. The caller
// identity is the token's subject.
//
//	POST /card/v5                         publish (adds the "virgil" signature)
//	POST /card/v5/actions/search          search by identities (at most 50, as E3Kit sends)
//	GET  /card/v5/{id}                    get (X-Virgil-Is-Superseeded: true when replaced or revoked)
//	POST /card/v5/actions/revoke/{id}     revoke one of the caller's cards
//	POST /keyknox/v2/push                 write an entry (previous-hash check, 409/50010)
//	POST /keyknox/v2/pull                 read the caller's copy of an entry
//	POST /keyknox/v2/keys                 list the keys the caller can read
//	POST /keyknox/v2/reset                delete entries or revoke an identity's access
//	POST /pythia/v1/brainkey              BrainKey seed of a blinded password
//	PUT  /keyknox/v1                      write the caller's value (previous-hash check, 409/50010)
//	GET  /keyknox/v1                      read the caller's value
//	POST /keyknox/v1/reset                delete the caller's value
//
// The last four serve E3Kit's key backup (backupPrivateKey, restorePrivateKey,
// changePassword, resetPrivateKeyBackup; docs/pythia.md). BrainKey takes
// {"blinded_password": base64 of a 49-byte G1 point, "brainkey_id"?: string}
// and answers {"seed": base64 of a 384-byte GT element}, the Pythia transform
// (package virgil/pythia) with the application's transformation key and a
// tweak bound to the caller's identity and the brainkey_id; a bad request is
// 400/60000 (CodePythiaInvalidParams). The application's Pythia secrets are
// made once and kept in Dir/pythia-keys.json (mode 0600), so seeds, and
// with them the backups, survive restarts. Keyknox v1 keeps one value per
// identity: {"meta","value"} in base64, answered as {"meta","value","version"}
// with the Virgil-Keyknox-Hash header (empty strings when there is none).
//
// Keyknox follows the data model of docs/virgil-protocol.md section 7.3: an
// entry belongs to the identity that pushed it and keeps one copy of (meta,
// value) per identity it is shared with, so an owner can add a participant
// without re-encrypting for everyone. Errors are always JSON {"code","message"}; the
// codes are the Code* constants. CORS headers are sent for browser clients.
//
// The emulator refuses what Virgil refuses: bad or expired tokens, cards of
// another identity, bad snapshots and self signatures, a previous card that
// is unknown or already replaced, a stale Keyknox previous hash.
//
// # Dev and test aids
//
// With Config.DebugAPI set (it is off by default; `groupsync dev` turns it
// on, `groupsync emulator` only when GROUPSYNC_EMULATOR_DEBUG_API is true),
// these endpoints answer without a token; they exist for tests, dev mode and
// chaos runs:
//
//	GET    /_emulator/groups/{groupID}?owner=<identity>   GroupView as JSON
//	GET    /_emulator/cards/{identity}                    the identity's newest card
//	GET    /_emulator/stats                               Stats as JSON
//	POST   /_emulator/fault                               set a Fault (FaultRequest JSON)
//	DELETE /_emulator/fault                               clear the fault
//
// The same functions are methods: Group, Card, SetFault, ClearFault, Stats.
//
// Always served, without a token: GET /emulator/v1/service-key
// (ServiceKeyPath) publishes the public key of the emulator's "virgil" card
// signatures, which the owner of a deployment against the emulator must be
// given (GROUPSYNC_VIRGIL_SERVICE_KEY).
//
// # Persistence
//
// With Config.Dir set, the state (cards and Keyknox entries) lives in Dir as
// a snapshot, state.json (snapshot.go), and a journal of the changes made
// since, journal.jsonl (journal.go), one JSON record a line. A change is
// appended to the journal before it touches the state, and answered once
// the journal is synced: a change that cannot be written is answered 500
// and changes nothing, a failed sync is answered 503. The journal is folded
// into a new snapshot in the background when it outgrows the snapshot. New
// reads the snapshot and replays the journal, and a generated service key is
// kept in Dir/service-key.der, so a restarted process serves the same data
// and signs cards with the same key. The model itself is in state.go.
package emulator
