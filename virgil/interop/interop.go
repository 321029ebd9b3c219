// Package interop runs the official E3Kit client (@virgilsecurity/e3kit-node
// 2.5.1, pinned in package.json and package-lock.json beside this file) as
// the judge of groupsync's Virgil code: tests start one Node.js driver
// process (driver.js) that simulates any number of E3Kit users against a
// Virgil-compatible server, and call its operations through typed Go
// methods. Failures come back as *E3KitError carrying the E3Kit error name
// and, for group errors, the GroupErrorCode.
//
// It is a test helper: import it from _test.go files only. Node.js (18 or
// newer) and npm must be installed; the first Start runs `npm ci` when
// node_modules is missing. A missing node or npm fails the test with a
// message saying so: these tests are never skipped silently.
package interop

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// GroupErrorCode is E3Kit's GroupErrorCode.
type GroupErrorCode int

// E3Kit group error codes.
const (
	// LocalGroupNotFound: the group is not in local storage.
	LocalGroupNotFound GroupErrorCode = 1
	// PermissionDenied: only the initiator may change the group.
	PermissionDenied GroupErrorCode = 2
	// RemoteGroupNotFound: the tickets cannot be decrypted with the current key.
	RemoteGroupNotFound GroupErrorCode = 3
	// InvalidGroup: the group has no tickets.
	InvalidGroup GroupErrorCode = 4
	// InvalidChangeParticipants: the change names nobody to remove.
	InvalidChangeParticipants GroupErrorCode = 5
	// InvalidParticipantsCount: outside 1..100 participants.
	InvalidParticipantsCount GroupErrorCode = 6
	// DataVerificationFailed: a signature does not verify.
	DataVerificationFailed GroupErrorCode = 7
	// GroupIDTooShort: the group id is shorter than 10 bytes.
	GroupIDTooShort GroupErrorCode = 8
	// MessageNotFromThisGroup: the message belongs to another session.
	MessageNotFromThisGroup GroupErrorCode = 9
	// GroupIsOutdated: the message is from a newer epoch; update first.
	GroupIsOutdated GroupErrorCode = 10
	// NoAccess: the user has no access to the group ticket.
	NoAccess GroupErrorCode = 11
	// ParticipantAlreadyAdded: every given participant is already in the group.
	ParticipantAlreadyAdded GroupErrorCode = 12
)

var groupErrorNames = map[GroupErrorCode]string{
	LocalGroupNotFound: "LocalGroupNotFound", PermissionDenied: "PermissionDenied",
	RemoteGroupNotFound: "RemoteGroupNotFound", InvalidGroup: "InvalidGroup",
	InvalidChangeParticipants: "InvalidChangeParticipants", InvalidParticipantsCount: "InvalidParticipantsCount",
	DataVerificationFailed: "DataVerificationFailed", GroupIDTooShort: "GroupIdTooShort",
	MessageNotFromThisGroup: "MessageNotFromThisGroup", GroupIsOutdated: "GroupIsOutdated",
	NoAccess: "NoAccess", ParticipantAlreadyAdded: "ParticipantAlreadyAdded",
}

// String returns the E3Kit name of c.
func (c GroupErrorCode) String() string {
	if n, ok := groupErrorNames[c]; ok {
		return n
	}
	return "GroupErrorCode(" + strconv.Itoa(int(c)) + ")"
}

// E3KitError is an error thrown by the E3Kit client for one operation.
type E3KitError struct {
	// Op and User name the driver operation and the simulated user.
	Op, User string
	// Name is the JavaScript error name (GroupError, UsersNotFoundError,
	// VirgilHttpError, KeyknoxClientError, ...).
	Name string `json:"name"`
	// Message is the error message.
	Message string `json:"message"`
	// GroupErrorCode is set for a GroupError.
	GroupErrorCode GroupErrorCode `json:"groupErrorCode"`
	// HTTPStatus and Code are set for service errors.
	HTTPStatus int `json:"httpStatus"`
	// Code is the Virgil service error code of a service error.
	Code int `json:"code"`
	// Identities lists the identities of UsersNotFoundError and similar.
	Identities []string `json:"identities"`
}

// Error implements error.
func (e *E3KitError) Error() string {
	s := fmt.Sprintf("interop: %s %s: %s", e.User, e.Op, e.Name)
	if e.GroupErrorCode != 0 {
		s += fmt.Sprintf(" %s(%d)", e.GroupErrorCode, int(e.GroupErrorCode))
	}
	if e.HTTPStatus != 0 || e.Code != 0 {
		s += fmt.Sprintf(" http %d code %d", e.HTTPStatus, e.Code)
	}
	return s + ": " + e.Message
}

// GroupCode returns the GroupErrorCode of err when it is an *E3KitError
// for a GroupError, and 0 otherwise.
func GroupCode(err error) GroupErrorCode {
	var e *E3KitError
	if errors.As(err, &e) {
		return e.GroupErrorCode
	}
	return 0
}

// ErrorName returns the E3Kit error name of err, or "" when err is not an
// *E3KitError.
func ErrorName(err error) string {
	var e *E3KitError
	if errors.As(err, &e) {
		return e.Name
	}
	return ""
}

// ErrDriverExited is returned (wrapped) for calls after the driver process
// has ended.
var ErrDriverExited = errors.New("interop: E3Kit driver process exited")

// App holds the Virgil application credentials the driver uses to make
// users' JWTs with virgil-sdk's JwtGenerator.
type App struct {
	// AppID is the application id.
	AppID string `json:"appId"`
	// AppKeyID is the application key id.
	AppKeyID string `json:"appKeyId"`
	// AppKey is the base64 PKCS#8 application private key. It is sent to the
	// driver on its standard input only.
	AppKey string `json:"appKey"`
	// TTLSeconds is the token lifetime (default 1200).
	TTLSeconds int `json:"ttlSeconds,omitempty"`
}

// Config configures a driver.
type Config struct {
	// APIURL is the Virgil base URL (E3Kit apiUrl), without trailing slash.
	APIURL string
	// App, when set, lets the driver generate users' tokens.
	App *App
	// TokenURL, when set, is fetched (GET, with TokenHeaders and
	// X-CometChat-UID: <user>) for users without their own token source;
	// it must answer {"virgilToken": "<jwt>"}.
	TokenURL string
	// TokenHeaders are sent with every TokenURL request.
	TokenHeaders map[string]string
	// StorageDir holds each user's key and group storage (default: a
	// temporary folder of the test).
	StorageDir string
	// Dir is the folder with driver.js and package.json (default: this
	// package's source folder, or $GROUPSYNC_INTEROP_DIR).
	Dir string
	// CallTimeout bounds calls whose context has no deadline (default 2m).
	CallTimeout time.Duration
}

// Driver is a running E3Kit driver process. Its methods are safe for
// concurrent use; calls for the same user run in order, calls for different
// users run concurrently.
type Driver struct {
	tb      testing.TB
	cmd     *exec.Cmd
	stdin   io.WriteCloser
	timeout time.Duration

	writeMu sync.Mutex
	mu      sync.Mutex
	nextID  int64
	waiting map[int64]chan reply
	done    chan struct{} // closed when the process has exited
	exitErr error
	stderr  *tailBuffer
}

type reply struct {
	ID     int64           `json:"id"`
	OK     bool            `json:"ok"`
	Result json.RawMessage `json:"result"`
	Error  *E3KitError     `json:"error"`
}

// PackageDir returns the folder of driver.js: $GROUPSYNC_INTEROP_DIR or this
// package's source folder.
func PackageDir() (string, error) {
	if d := os.Getenv("GROUPSYNC_INTEROP_DIR"); d != "" {
		return d, nil
	}
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "", errors.New("interop: cannot locate the package folder; set GROUPSYNC_INTEROP_DIR")
	}
	return filepath.Dir(file), nil
}

// EnsureInstalled checks node and npm and runs `npm ci` in dir when the
// pinned E3Kit package is not installed yet. Concurrent callers (also in
// other processes) install once.
func EnsureInstalled(dir string) error {
	node, err := exec.LookPath("node")
	if err != nil {
		return errors.New("interop: `node` not found on PATH: install Node.js 18 or newer (with npm) to run the E3Kit interop tests")
	}
	out, err := exec.Command(node, "--version").Output()
	if err != nil {
		return fmt.Errorf("interop: `node --version`: %w", err)
	}
	v := strings.TrimPrefix(strings.TrimSpace(string(out)), "v")
	if major, _ := strconv.Atoi(strings.SplitN(v, ".", 2)[0]); major < 18 {
		return fmt.Errorf("interop: node %s is too old: the E3Kit driver needs Node.js 18 or newer", v)
	}
	marker := filepath.Join(dir, "node_modules", "@virgilsecurity", "e3kit-node", "package.json")
	if _, err := os.Stat(marker); err == nil {
		return nil
	}
	npm, err := exec.LookPath("npm")
	if err != nil {
		return errors.New("interop: `npm` not found on PATH and " + filepath.Join(dir, "node_modules") +
			" is missing: install npm (it comes with Node.js) so the test can run `npm ci`")
	}
	lock, err := os.OpenFile(filepath.Join(dir, ".npm-install.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return fmt.Errorf("interop: install lock: %w", err)
	}
	defer func() { _ = lock.Close() }()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return fmt.Errorf("interop: install lock: %w", err)
	}
	defer func() { _ = syscall.Flock(int(lock.Fd()), syscall.LOCK_UN) }()
	if _, err := os.Stat(marker); err == nil {
		return nil // another process installed it meanwhile
	}
	ci := exec.Command(npm, "ci", "--no-audit", "--no-fund")
	ci.Dir = dir
	var buf bytes.Buffer
	ci.Stdout, ci.Stderr = &buf, &buf
	if err := ci.Run(); err != nil {
		return fmt.Errorf("interop: `npm ci` in %s failed: %w\n%s", dir, err, buf.String())
	}
	if _, err := os.Stat(marker); err != nil {
		return fmt.Errorf("interop: `npm ci` did not install @virgilsecurity/e3kit-node: %w", err)
	}
	return nil
}

// Start installs the driver if needed, starts it, configures it with cfg
// and registers its shutdown with tb.Cleanup. It fails tb on any error.
func Start(tb testing.TB, cfg Config) *Driver {
	tb.Helper()
	if cfg.APIURL == "" {
		tb.Fatal("interop: Config.APIURL is required")
	}
	dir := cfg.Dir
	if dir == "" {
		var err error
		if dir, err = PackageDir(); err != nil {
			tb.Fatal(err)
		}
	}
	if err := EnsureInstalled(dir); err != nil {
		tb.Fatal(err)
	}
	if cfg.StorageDir == "" {
		cfg.StorageDir = tb.TempDir()
	}
	if cfg.CallTimeout <= 0 {
		cfg.CallTimeout = 2 * time.Minute
	}
	cmd := exec.Command("node", "--no-experimental-fetch", "driver.js")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "NODE_NO_WARNINGS=1")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		tb.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	d := &Driver{
		tb: tb, cmd: cmd, stdin: stdin, timeout: cfg.CallTimeout,
		waiting: map[int64]chan reply{}, done: make(chan struct{}), stderr: &tailBuffer{max: 64 << 10},
	}
	cmd.Stderr = d.stderr
	if err := cmd.Start(); err != nil {
		tb.Fatalf("interop: start node driver: %v", err)
	}
	go d.readLoop(stdout)
	tb.Cleanup(d.stop)

	args := map[string]any{"apiUrl": strings.TrimRight(cfg.APIURL, "/"), "storageDir": cfg.StorageDir}
	if cfg.App != nil {
		args["app"] = cfg.App
	}
	if cfg.TokenURL != "" {
		args["tokenUrl"] = cfg.TokenURL
		args["tokenHeaders"] = cfg.TokenHeaders
	}
	if err := d.Call(context.Background(), "configure", "", args, nil); err != nil {
		tb.Fatalf("interop: configure driver: %v", err)
	}
	return d
}

func (d *Driver) readLoop(stdout io.Reader) {
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 64<<10), 64<<20)
	for sc.Scan() {
		var r reply
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			_, _ = fmt.Fprintf(d.stderr, "interop: unparsable driver output: %q\n", sc.Text())
			continue
		}
		d.mu.Lock()
		ch := d.waiting[r.ID]
		delete(d.waiting, r.ID)
		d.mu.Unlock()
		if ch != nil {
			ch <- r
		}
	}
	err := d.cmd.Wait()
	d.mu.Lock()
	d.exitErr = err
	d.mu.Unlock()
	close(d.done)
}

// stop ends the driver: it closes stdin (the driver exits when its work is
// done) and kills the process if it has not exited within 10 seconds.
func (d *Driver) stop() {
	_ = d.stdin.Close()
	select {
	case <-d.done:
	case <-time.After(10 * time.Second):
		_ = d.cmd.Process.Kill()
		<-d.done
	}
	if d.tb.Failed() {
		d.tb.Logf("interop: driver stderr (tail):\n%s", d.stderr.String())
	}
}

// Stderr returns the tail of the driver's standard error.
func (d *Driver) Stderr() string { return d.stderr.String() }

// Call runs op for user with args (user may be "" for global operations)
// and decodes the result into result (when not nil). An E3Kit failure is
// an *E3KitError.
func (d *Driver) Call(ctx context.Context, op, user string, args map[string]any, result any) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, d.timeout)
		defer cancel()
	}
	msg := map[string]any{}
	for k, v := range args {
		msg[k] = v
	}
	d.mu.Lock()
	d.nextID++
	id := d.nextID
	ch := make(chan reply, 1)
	d.waiting[id] = ch
	d.mu.Unlock()
	msg["id"], msg["op"] = id, op
	if user != "" {
		msg["user"] = user
	}
	line, err := json.Marshal(msg)
	if err != nil {
		return fmt.Errorf("interop: %s: encode: %w", op, err)
	}
	d.writeMu.Lock()
	_, err = d.stdin.Write(append(line, '\n'))
	d.writeMu.Unlock()
	if err != nil {
		return fmt.Errorf("interop: %s: write to driver: %w: %w", op, ErrDriverExited, err)
	}
	select {
	case r := <-ch:
		if !r.OK {
			if r.Error == nil {
				r.Error = &E3KitError{Name: "Error", Message: "driver answered ok=false without an error"}
			}
			r.Error.Op, r.Error.User = op, user
			return r.Error
		}
		if result != nil {
			if err := json.Unmarshal(r.Result, result); err != nil {
				return fmt.Errorf("interop: %s: decode result %s: %w", op, r.Result, err)
			}
		}
		return nil
	case <-d.done:
		return fmt.Errorf("interop: %s for %q: %w (%v); stderr:\n%s", op, user, ErrDriverExited, d.exitErr, d.stderr.String())
	case <-ctx.Done():
		d.mu.Lock()
		delete(d.waiting, id)
		d.mu.Unlock()
		return fmt.Errorf("interop: %s for %q: %w", op, user, ctx.Err())
	}
}

// UserOptions choose how a user gets tokens (see Init).
type UserOptions struct {
	// Identity is the identity tokens are generated for with the App
	// credentials (default: the user name).
	Identity string
	// JWT is a fixed token for the user.
	JWT string
	// TokenURL overrides Config.TokenURL for this user.
	TokenURL string
	// TokenHeaders are sent with this user's TokenURL requests.
	TokenHeaders map[string]string
}

// Init initializes user (EThree.initialize) and returns its identity. It is
// optional: any other call initializes the user with the configured token
// source and the user name as identity.
func (d *Driver) Init(ctx context.Context, user string, opt UserOptions) (string, error) {
	args := map[string]any{}
	if opt.Identity != "" {
		args["identity"] = opt.Identity
	}
	if opt.JWT != "" {
		args["jwt"] = opt.JWT
	}
	if opt.TokenURL != "" {
		args["tokenUrl"] = opt.TokenURL
	}
	if opt.TokenHeaders != nil {
		args["tokenHeaders"] = opt.TokenHeaders
	}
	var r struct {
		Identity string `json:"identity"`
	}
	err := d.Call(ctx, "init", user, args, &r)
	return r.Identity, err
}

// Register publishes a new card with a fresh key (EThree.register).
func (d *Driver) Register(ctx context.Context, user string) error {
	return d.Call(ctx, "register", user, nil, nil)
}

// RegisterWithKey registers with the given private key (PKCS#8 base64).
func (d *Driver) RegisterWithKey(ctx context.Context, user, privateKeyPKCS8 string) error {
	return d.Call(ctx, "register", user, map[string]any{"privateKey": privateKeyPKCS8}, nil)
}

// CardInfo describes a card found by FindUsers.
type CardInfo struct {
	// ID is the card id.
	ID string `json:"id"`
	// Identity is the card identity.
	Identity string `json:"identity"`
	// PreviousCardID is the id of the card it replaces, or "".
	PreviousCardID string `json:"previousCardId"`
	// HasPreviousCard reports whether the previous card was linked.
	HasPreviousCard bool `json:"hasPreviousCard"`
}

// FindUsers looks identities up (EThree.findUsers), in the given order.
func (d *Driver) FindUsers(ctx context.Context, user string, identities ...string) ([]CardInfo, error) {
	var r struct {
		Cards []CardInfo `json:"cards"`
	}
	err := d.Call(ctx, "findUsers", user, map[string]any{"identities": nonNil(identities)}, &r)
	return r.Cards, err
}

type participants struct {
	Participants []string `json:"participants"`
}

func (d *Driver) groupCall(ctx context.Context, op, user string, args map[string]any) ([]string, error) {
	var r participants
	err := d.Call(ctx, op, user, args, &r)
	return r.Participants, err
}

// CreateGroup creates groupID with user as initiator and participants (found
// with findUsers) and returns the group's participants.
func (d *Driver) CreateGroup(ctx context.Context, user, groupID string, participants ...string) ([]string, error) {
	return d.groupCall(ctx, "createGroup", user, map[string]any{"groupId": groupID, "participants": nonNil(participants)})
}

// LoadGroup finds owner's card and loads groupID (EThree.loadGroup); it
// returns the participants.
func (d *Driver) LoadGroup(ctx context.Context, user, groupID, owner string) ([]string, error) {
	return d.groupCall(ctx, "loadGroup", user, map[string]any{"groupId": groupID, "owner": owner})
}

// GetGroup reads the locally stored group (EThree.getGroup); found is false
// when there is none.
func (d *Driver) GetGroup(ctx context.Context, user, groupID string) (participants []string, found bool, err error) {
	var r struct {
		Found        bool     `json:"found"`
		Participants []string `json:"participants"`
	}
	err = d.Call(ctx, "getGroup", user, map[string]any{"groupId": groupID}, &r)
	return r.Participants, r.Found, err
}

// Update refreshes the user's group from the service (Group.update).
func (d *Driver) Update(ctx context.Context, user, groupID string) ([]string, error) {
	return d.groupCall(ctx, "update", user, map[string]any{"groupId": groupID})
}

// Encrypt encrypts text with the user's group (Group.encrypt), base64.
func (d *Driver) Encrypt(ctx context.Context, user, groupID, text string) (string, error) {
	var r struct {
		Cipher string `json:"cipher"`
	}
	err := d.Call(ctx, "encrypt", user, map[string]any{"groupId": groupID, "text": text}, &r)
	return r.Cipher, err
}

// Decrypt decrypts cipher from sender with the user's group (Group.decrypt).
func (d *Driver) Decrypt(ctx context.Context, user, groupID, cipher, sender string) (string, error) {
	var r struct {
		Text string `json:"text"`
	}
	err := d.Call(ctx, "decrypt", user, map[string]any{"groupId": groupID, "cipher": cipher, "sender": sender}, &r)
	return r.Text, err
}

// Add adds identities to the user's group (Group.add).
func (d *Driver) Add(ctx context.Context, user, groupID string, identities ...string) ([]string, error) {
	return d.groupCall(ctx, "add", user, map[string]any{"groupId": groupID, "identities": nonNil(identities)})
}

// Remove removes identities from the user's group (Group.remove).
func (d *Driver) Remove(ctx context.Context, user, groupID string, identities ...string) ([]string, error) {
	return d.groupCall(ctx, "remove", user, map[string]any{"groupId": groupID, "identities": nonNil(identities)})
}

// ReAdd re-shares the group with identity's current card (Group.reAdd).
func (d *Driver) ReAdd(ctx context.Context, user, groupID, identity string) (participants []string, card CardInfo, err error) {
	var r struct {
		Participants []string `json:"participants"`
		Card         CardInfo `json:"card"`
	}
	err = d.Call(ctx, "reAdd", user, map[string]any{"groupId": groupID, "identity": identity}, &r)
	return r.Participants, r.Card, err
}

// DeleteGroup deletes the group (EThree.deleteGroup).
func (d *Driver) DeleteGroup(ctx context.Context, user, groupID string) error {
	return d.Call(ctx, "deleteGroup", user, map[string]any{"groupId": groupID}, nil)
}

// Cleanup deletes the user's local private key and groups (EThree.cleanup).
func (d *Driver) Cleanup(ctx context.Context, user string) error {
	return d.Call(ctx, "cleanup", user, nil, nil)
}

// RotatePrivateKey publishes a new card replacing the current one
// (EThree.rotatePrivateKey; call Cleanup first).
func (d *Driver) RotatePrivateKey(ctx context.Context, user string) error {
	return d.Call(ctx, "rotatePrivateKey", user, nil, nil)
}

// Unregister revokes the user's cards (EThree.unregister).
func (d *Driver) Unregister(ctx context.Context, user string) error {
	return d.Call(ctx, "unregister", user, nil, nil)
}

// BackupPrivateKey stores the user's private key in Keyknox, encrypted with
// a key derived from password through Pythia BrainKey
// (EThree.backupPrivateKey). keyName empty: the Keyknox v1 backup; else
// E3Kit's named Keyknox v2 backup.
func (d *Driver) BackupPrivateKey(ctx context.Context, user, password, keyName string) error {
	return d.Call(ctx, "backupPrivateKey", user, map[string]any{"password": password, "keyName": keyName}, nil)
}

// RestorePrivateKey loads the user's backed-up private key onto this
// device (EThree.restorePrivateKey). A wrong password fails with E3Kit's
// WrongKeyknoxPasswordError.
func (d *Driver) RestorePrivateKey(ctx context.Context, user, password, keyName string) error {
	return d.Call(ctx, "restorePrivateKey", user, map[string]any{"password": password, "keyName": keyName}, nil)
}

// ChangePassword re-encrypts the backup for a new password (EThree.changePassword).
func (d *Driver) ChangePassword(ctx context.Context, user, oldPassword, newPassword, keyName string) error {
	return d.Call(ctx, "changePassword", user, map[string]any{"oldPassword": oldPassword, "newPassword": newPassword, "keyName": keyName}, nil)
}

// ResetPrivateKeyBackup deletes the backup (EThree.resetPrivateKeyBackup,
// or resetPrivateKeyBackupWithKeyName with a keyName).
func (d *Driver) ResetPrivateKeyBackup(ctx context.Context, user, keyName string) error {
	return d.Call(ctx, "resetPrivateKeyBackup", user, map[string]any{"keyName": keyName}, nil)
}

// Ping returns the E3Kit and Node.js versions of the driver.
func (d *Driver) Ping(ctx context.Context) (e3kit, node string, err error) {
	var r struct {
		E3Kit string `json:"e3kit"`
		Node  string `json:"node"`
	}
	err = d.Call(ctx, "ping", "", nil, &r)
	return r.E3Kit, r.Node, err
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > t.max {
		t.b = append([]byte(nil), t.b[len(t.b)-t.max:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b)
}
