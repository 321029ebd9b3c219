package main

// Inspection of a running Cluster: the emulator's view of groups and its
// faults, the failed and queued jobs, resource use, and the secret scan of
// every process log. Starting and stopping the processes is in cluster.go.

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// CPU returns the CPU time used so far by each part of the cluster that is
// running: "emulator", "serve", "workers" (all worker processes together),
// "redis", and "nats" (this process, which hosts nats-server; it includes
// the harness's own work).
func (c *Cluster) CPU() map[string]time.Duration {
	out := map[string]time.Duration{}
	add := func(name string, pid int) {
		if d, err := cpuTime(pid); err == nil {
			out[name] += d
		}
	}
	c.mu.Lock()
	if c.emulator != nil && c.emulator.Running() {
		add("emulator", c.emulator.Pid())
	}
	for _, s := range c.serves {
		if s.Running() {
			add("serve", s.Pid())
		}
	}
	for _, w := range c.workers {
		if w.Running() {
			add("workers", w.Pid())
		}
	}
	c.mu.Unlock()
	if c.redis != nil {
		c.redis.mu.Lock()
		if c.redis.cmd != nil {
			add("redis", c.redis.cmd.Process.Pid)
		}
		c.redis.mu.Unlock()
	}
	if c.redisH != nil {
		for _, r := range append(append([]*redisProc{}, c.redisH.servers...), c.redisH.sentinels...) {
			r.mu.Lock()
			if r.cmd != nil {
				add("redis", r.cmd.Process.Pid)
			}
			r.mu.Unlock()
		}
	}
	if c.natsC == nil {
		add("nats", os.Getpid()) // in this process
		return out
	}
	c.natsC.mu.Lock()
	for _, n := range c.natsC.nodes {
		if n.cmd != nil {
			add("nats", n.cmd.Process.Pid)
		}
	}
	c.natsC.mu.Unlock()
	return out
}

// Fault sets an emulator fault (POST /_emulator/fault).
func (c *Cluster) Fault(body string) error {
	resp, err := http.Post(c.VirgilURL+"/_emulator/fault", "application/json", strings.NewReader(body))
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("set fault %s: status %d", body, resp.StatusCode)
	}
	return nil
}

// ClearFault removes the emulator fault.
func (c *Cluster) ClearFault() error {
	req, _ := http.NewRequest(http.MethodDelete, c.VirgilURL+"/_emulator/fault", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	return nil
}

// GroupView is the emulator's view of a Virgil group.
type GroupView struct {
	Participants []string      `json:"participants"`
	Epochs       []string      `json:"epochs"`
	History      []GroupChange `json:"history,omitempty"`
	// HistoryDropped counts the oldest changes the emulator no longer keeps.
	HistoryDropped int `json:"history_dropped,omitempty"`
}

// GroupChange is one change of a group's participants as the emulator
// stored it (see emulator.GroupChange), stamped with its clock, the same
// machine's clock as the harness's.
type GroupChange struct {
	At           time.Time `json:"at"`
	Participants []string  `json:"participants"`
	Epochs       int       `json:"epochs"`
}

// Group returns the emulator view of the CometChat group guid; found is
// false when the Virgil group does not exist.
func (c *Cluster) Group(client *http.Client, guid string) (v GroupView, found bool, err error) {
	return c.group(client, guid, false)
}

// GroupWithHistory is Group with the group's change history, oldest first.
func (c *Cluster) GroupWithHistory(client *http.Client, guid string) (v GroupView, found bool, err error) {
	return c.group(client, guid, true)
}

func (c *Cluster) group(client *http.Client, guid string, history bool) (v GroupView, found bool, err error) {
	url := c.VirgilURL + "/_emulator/groups/" + c.Identity.Group(guid) + "?owner=" + c.Identity.Owner()
	if history {
		url += "&history=1"
	}
	resp, err := client.Get(url)
	if err != nil {
		return v, false, err
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
		err = json.NewDecoder(resp.Body).Decode(&v)
		slices.Sort(v.Participants)
		return v, err == nil, err
	case http.StatusNotFound:
		_, _ = io.Copy(io.Discard, resp.Body)
		return v, false, nil
	default:
		return v, false, fmt.Errorf("%s: status %d", url, resp.StatusCode)
	}
}

// FailedJob is one object of `groupsync jobs failed --json`.
type FailedJob struct {
	ID       string    `json:"id"`
	Trigger  string    `json:"trigger"`
	GUID     string    `json:"guid"`
	Error    string    `json:"error"`
	Attempts int       `json:"attempts"`
	FailedAt time.Time `json:"failed_at"`
}

// FailedJobs runs `groupsync jobs failed --json`.
func (c *Cluster) FailedJobs(ctx context.Context) ([]FailedJob, error) {
	out, err := c.Run(ctx, "jobs", "failed", "--json")
	if err != nil {
		return nil, err
	}
	var jobs []FailedJob
	if err := json.Unmarshal([]byte(out), &jobs); err != nil {
		return nil, fmt.Errorf("jobs failed --json: %v: %q", err, out)
	}
	return jobs, nil
}

// QueuedJobs returns how many jobs the GROUPSYNC stream still holds (it has
// work-queue retention: a job leaves once settled) and its last sequence.
func (c *Cluster) QueuedJobs(ctx context.Context) (msgs, lastSeq, firstSeq uint64, err error) {
	js, err := jetstream.New(c.nc)
	if err != nil {
		return 0, 0, 0, err
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, "GROUPSYNC")
	if err != nil {
		return 0, 0, 0, err
	}
	info, err := s.Info(ctx)
	if err != nil {
		return 0, 0, 0, err
	}
	return info.State.Msgs, info.State.LastSeq, info.State.FirstSeq, nil
}

// Secrets returns the values that must never appear in any log.
func (c *Cluster) Secrets() map[string]string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps(c.secrets)
}

func maps(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// AddSecret adds a value to the secret scan, such as an issued JWT.
func (c *Cluster) AddSecret(name, value string) {
	c.mu.Lock()
	c.secrets[name] = value
	c.mu.Unlock()
}

// ScanLogs reads every process log and returns one line per leaked secret
// (or JWT-shaped string), naming the process and the secret, never its value.
func (c *Cluster) ScanLogs() ([]string, error) {
	secrets := c.Secrets()
	c.mu.Lock()
	procs := slices.Clone(c.procs)
	c.mu.Unlock()
	var leaks []string
	for _, p := range procs {
		f, err := os.Open(p.LogFile)
		if err != nil {
			return nil, err
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 1<<20), 16<<20)
		n := 0
		for sc.Scan() {
			n++
			line := sc.Text()
			for name, s := range secrets {
				if s != "" && strings.Contains(line, s) {
					leaks = append(leaks, fmt.Sprintf("%s line %d: %s", filepath.Base(p.LogFile), n, name))
				}
			}
			if strings.Contains(line, "eyJhbGciOi") || strings.Contains(line, "eyJ0eXAiOi") || strings.Contains(line, "eyJraWQiOi") {
				leaks = append(leaks, fmt.Sprintf("%s line %d: a JWT", filepath.Base(p.LogFile), n))
			}
		}
		f.Close()
		if err := sc.Err(); err != nil {
			return nil, err
		}
	}
	return leaks, nil
}
