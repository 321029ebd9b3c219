package browser

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/groupsync/groupsync/internal/testkit"
	"github.com/groupsync/groupsync/queue"
)

// devInfo is the part of <data-dir>/dev.json the test reads.
type devInfo struct {
	HTTPURL        string `json:"http_url"`
	VirgilAPIURL   string `json:"virgil_api_url"`
	NATSURL        string `json:"nats_url"`
	CometChatAppID string `json:"cometchat_app_id"`
	OwnerIdentity  string `json:"owner_identity"`
	Webhook        struct {
		Path     string `json:"path"`
		Username string `json:"username"`
		Password string `json:"password"`
	} `json:"webhook"`
	Console struct {
		URL      string `json:"url"`
		Username string `json:"username"`
		Password string `json:"password"`
	} `json:"console"`
}

// dev is a running `groupsync dev` on free ports with a temporary data dir.
type dev struct {
	info   devInfo
	cmd    *exec.Cmd
	log    *testkit.Buffer
	exited chan struct{}
	err    error
}

// built is the groupsync binary the tests of the package share, built once
// into binDir (TestMain makes and removes it).
var (
	binDir   string
	build    sync.Once
	built    string
	buildErr error
)

func TestMain(m *testing.M) {
	flag.Parse()
	dir, err := os.MkdirTemp("", "groupsync-browser-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// groupsyncBinary builds the binary on the first call and returns its path.
func groupsyncBinary(t *testing.T) string {
	t.Helper()
	build.Do(func() {
		bin := filepath.Join(binDir, "groupsync")
		cmd := exec.Command("go", "build", "-o", bin, "./cmd/groupsync")
		cmd.Dir = "../.."
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("build groupsync: %v\n%s", err, out)
			return
		}
		built = bin
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return built
}

// startDev starts `groupsync dev` and waits for its dev.json and /readyz.
func startDev(t *testing.T, bin string) *dev {
	t.Helper()
	dir := t.TempDir()
	cmd := exec.Command(bin, "dev", "--data-dir", dir, "--http-addr", "127.0.0.1:0",
		"--emulator-addr", "127.0.0.1:0", "--console-addr", "127.0.0.1:0", "--nats-port", "-1", "--partitions", "4", "--log-level", "warn")
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "GROUPSYNC_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	d := &dev{cmd: cmd, log: &testkit.Buffer{}, exited: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = d.log, d.log
	if err := cmd.Start(); err != nil {
		t.Fatalf("start groupsync dev: %v", err)
	}
	go func() {
		d.err = cmd.Wait()
		close(d.exited)
	}()
	t.Cleanup(func() { d.stop(t) })
	testkit.AwaitJSONFile(t, 60*time.Second, "groupsync dev writes dev.json", filepath.Join(dir, "dev.json"), &d.info, d.exited, func() string {
		return fmt.Sprintf("groupsync dev exited: %v\n%s", d.err, d.log.String())
	})
	testkit.EventuallyErr(t, 30*time.Second, "groupsync dev is ready", func() error {
		resp, err := http.Get(d.info.HTTPURL + "/readyz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("/readyz answered %d", resp.StatusCode)
		}
		return nil
	})
	return d
}

// stop interrupts the instance and waits for it; it kills it after 20 s.
func (d *dev) stop(t *testing.T) {
	select {
	case <-d.exited:
		return
	default:
	}
	_ = d.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-d.exited:
	case <-time.After(20 * time.Second):
		_ = d.cmd.Process.Kill()
		<-d.exited
		t.Errorf("groupsync dev did not stop within 20 s of SIGINT")
	}
	if t.Failed() {
		log := d.log.String()
		for _, secret := range []string{d.info.Webhook.Password, d.info.Console.Password} {
			if secret != "" {
				log = strings.ReplaceAll(log, secret, "REDACTED")
			}
		}
		t.Logf("groupsync dev log:\n%s", log)
	}
}

// webhook posts a CometChat group webhook with the dev instance's Basic auth
// and requires a 200.
func (d *dev) webhook(t *testing.T, trigger string, data map[string]any) {
	t.Helper()
	body, err := json.Marshal(map[string]any{
		"trigger": trigger,
		"appId":   d.info.CometChatAppID,
		"region":  "eu",
		"webhook": "groupsync",
		"data":    data,
	})
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest(http.MethodPost, d.info.HTTPURL+d.info.Webhook.Path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth(d.info.Webhook.Username, d.info.Webhook.Password)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("post %s webhook: %v", trigger, err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%s webhook answered %d: %s", trigger, resp.StatusCode, out)
	}
}

// members is the "members" object of a webhook: uid -> {uid, name}.
func members(uids ...string) map[string]any {
	m := map[string]any{}
	for _, uid := range uids {
		m[uid] = map[string]any{"uid": uid, "name": uid, "role": "default"}
	}
	return m
}

// groupCreated, memberAdded and memberKicked post the CometChat webhooks of
// those triggers for guid; at orders events of one group (seconds).
func (d *dev) groupCreated(t *testing.T, guid string, at int64, owner string, uids ...string) {
	t.Helper()
	d.webhook(t, "group_created", map[string]any{
		"group":   map[string]any{"guid": guid, "name": guid, "type": "private", "owner": owner, "createdAt": at, "membersCount": len(uids)},
		"members": members(uids...),
	})
}

func (d *dev) memberAdded(t *testing.T, guid string, createdAt, at int64, by string, uids ...string) {
	t.Helper()
	d.webhook(t, "group_member_added", map[string]any{
		"group":   map[string]any{"guid": guid, "createdAt": createdAt, "updatedAt": at},
		"members": members(uids...),
		"by":      map[string]any{"uid": by},
	})
}

func (d *dev) memberKicked(t *testing.T, guid string, createdAt, at int64, by string, uids ...string) {
	t.Helper()
	d.webhook(t, "group_member_kicked", map[string]any{
		"group":   map[string]any{"guid": guid, "createdAt": createdAt, "updatedAt": at},
		"members": members(uids...),
		"by":      map[string]any{"uid": by},
	})
}

// groupView is what the emulator's debug endpoint says of a group.
type groupView struct {
	Participants []string `json:"participants"`
	Epochs       []string `json:"epochs"`
}

// waitGroup polls the emulator until the group's newest epoch lists exactly
// the owner and the given identities, then waits until every queued job has
// settled: a removal writes the new epoch first and revokes the removed
// members' access to the older ones after it.
func (d *dev) waitGroup(t *testing.T, groupID string, identities ...string) groupView {
	t.Helper()
	want := append([]string{d.info.OwnerIdentity}, identities...)
	var v groupView
	testkit.EventuallyErr(t, 30*time.Second, "group "+groupID+" has participants "+strings.Join(want, ","), func() error {
		resp, err := http.Get(d.info.VirgilAPIURL + "/_emulator/groups/" + groupID + "?owner=" + d.info.OwnerIdentity)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("emulator answered %d", resp.StatusCode)
		}
		v = groupView{}
		if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
			return err
		}
		if !sameSet(v.Participants, want) {
			return fmt.Errorf("participants %v", v.Participants)
		}
		return nil
	})
	testkit.WaitStreamEmpty(t, 30*time.Second, d.info.NATSURL, queue.DefaultStream)
	return v
}

func sameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	seen := map[string]int{}
	for _, s := range a {
		seen[s]++
	}
	for _, s := range b {
		if seen[s] == 0 {
			return false
		}
		seen[s]--
	}
	return true
}
