package main

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/groupsync/groupsync/queue"
	"github.com/groupsync/groupsync/queue/natstest"
)

// TestNATSSettingsRefused: NATS and job-key settings that cannot work stop
// the command with one line and exit status 2, before or while connecting,
// and the line never holds a password from the URL.
func TestNATSSettingsRefused(t *testing.T) {
	single := natstest.Run(t)
	const pw = "nats-pa55word-in-url"
	worker := []string{"GROUPSYNC_COMETCHAT_APP_ID=app", "GROUPSYNC_VIRGIL_APP_ID=a", "GROUPSYNC_VIRGIL_APP_KEY_ID=k"}
	cases := []struct {
		name string
		env  []string
		args []string
		want string
	}{
		{"NotANATSURL", []string{"GROUPSYNC_NATS_URL=http://groupsync:" + pw + "@nats:4222"}, []string{"jobs", "failed"}, "scheme"},
		{"MalformedURL", []string{"GROUPSYNC_NATS_URL=nats://groupsync:" + pw + "%zz@nats:4222"}, []string{"jobs", "failed"}, "server URL"},
		{"TwoWaysToAuthenticate", []string{"GROUPSYNC_NATS_URL=nats://groupsync:" + pw + "@nats:4222", "GROUPSYNC_NATS_TOKEN=tok"}, []string{"jobs", "failed"}, "more than one way"},
		{"MissingCredsFile", []string{"GROUPSYNC_NATS_CREDS_FILE=/nonexistent/groupsync.creds"}, []string{"jobs", "failed"}, "creds file"},
		{"TooManyReplicas", []string{"GROUPSYNC_STREAM_REPLICAS=7"}, []string{"jobs", "failed"}, "stream-replicas"},
		{"ReplicasWithoutCluster", []string{"GROUPSYNC_NATS_URL=" + single.URL(), "GROUPSYNC_STREAM_REPLICAS=3"}, []string{"jobs", "failed"}, "3 replicas refused: NATS runs without clustering"},
		{"WorkerWithoutJobKey", worker, []string{"worker"}, "job-key is required"},
		{"ServeWithShortJobKey", []string{"GROUPSYNC_JOB_KEY=short", "GROUPSYNC_WEBHOOK_USERNAME=u", "GROUPSYNC_WEBHOOK_PASSWORD=p",
			"GROUPSYNC_COMETCHAT_APP_ID=app", "GROUPSYNC_CLIENT_AUTH=trust-header"}, []string{"serve"}, "job-key: 5 characters"},
		{"WorkerWithoutAppID", []string{"GROUPSYNC_JOB_KEY=" + strings.Repeat("k", 32)}, []string{"worker"}, "cometchat-app-id is required"},
		{"ReconcileWithoutJobKey", []string{"GROUPSYNC_COMETCHAT_APP_ID=app"}, []string{"reconcile", "g1"}, "job-key is required"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := runInProcess(t, tc.env, tc.args...)
			if code != 2 {
				t.Fatalf("groupsync %v exited %d, want 2\nstdout: %s\nstderr: %s", tc.args, code, stdout, stderr)
			}
			if lines := strings.Split(strings.TrimSpace(stderr), "\n"); len(lines) != 1 {
				t.Errorf("stderr has %d lines, want one:\n%s", len(lines), stderr)
			}
			if !strings.Contains(stderr, tc.want) {
				t.Errorf("stderr %q does not mention %q", stderr, tc.want)
			}
			if strings.Contains(stderr, pw) {
				t.Errorf("stderr shows the NATS password: %s", stderr)
			}
		})
	}
}

// TestFailedNATSConnectRedacted is issue 11's finding: a failed connect
// printed nats://user:password@host. The binary's message names the server
// without the password, refused credentials say so, and neither holds it.
func TestFailedNATSConnectRedacted(t *testing.T) {
	const pw = "s3cret-nats-password"
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close()
	guarded := natstest.Run(t, natstest.WithOptions(func(o *server.Options) {
		o.Users = []*server.User{{Username: "groupsync", Password: pw}}
	}))
	hostport := strings.TrimPrefix(guarded.URL(), "nats://")
	for name, tc := range map[string]struct{ url, want string }{
		"Unreachable": {"nats://groupsync:" + pw + "@" + closed, "nats://groupsync:REDACTED@" + closed},
		// One server: which of a list's servers a client tries last is
		// random, and its last answer is the one reported.
		"WrongPassword": {"nats://groupsync:" + pw + "-not@" + hostport, "credentials refused"},
		"WrongPasswordInList": {"nats://groupsync:" + pw + "-not@" + hostport + ",nats://groupsync:" + pw + "@" + closed,
			"nats://groupsync:REDACTED@"},
	} {
		t.Run(name, func(t *testing.T) {
			code, stdout, stderr := runBinary(t, []string{"GROUPSYNC_NATS_URL=" + tc.url, "GROUPSYNC_LOG_LEVEL=debug"}, "jobs", "failed")
			if code != 1 {
				t.Fatalf("jobs failed against %s exited %d, want 1\n%s%s", name, code, stdout, stderr)
			}
			if strings.Contains(stdout+stderr, pw) {
				t.Errorf("the output shows the NATS password:\n%s%s", stdout, stderr)
			}
			if !strings.Contains(stderr, tc.want) {
				t.Errorf("stderr %q does not say %q", stderr, tc.want)
			}
		})
	}
}

// TestStreamReplicasOnCluster runs a command against a 3-node cluster given
// as a server list: GROUPSYNC_STREAM_REPLICAS=3 makes the streams R3, a
// command without the setting leaves them so, and 5 replicas on 3 servers is
// refused with one line and exit status 2.
func TestStreamReplicasOnCluster(t *testing.T) {
	c := natstest.RunCluster(t, 3)
	env := []string{"GROUPSYNC_NATS_URL=" + c.URLs()}
	replicas := func() int {
		nc, err := queue.Connect(queue.ConnectConfig{URL: c.URLs()})
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		js, _ := jetstream.New(nc)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s, err := js.Stream(ctx, queue.DefaultStream)
		if err != nil {
			t.Fatal(err)
		}
		return s.CachedInfo().Config.Replicas
	}
	if code, _, stderr := runInProcess(t, append(env, "GROUPSYNC_STREAM_REPLICAS=3"), "jobs", "failed"); code != 0 {
		t.Fatalf("jobs failed with 3 replicas on 3 servers: exit %d: %s", code, stderr)
	}
	if got := replicas(); got != 3 {
		t.Fatalf("%s has %d replicas, want 3", queue.DefaultStream, got)
	}
	if code, _, stderr := runInProcess(t, env, "jobs", "failed"); code != 0 || replicas() != 3 {
		t.Fatalf("jobs failed without the setting: exit %d (%s), %d replicas; want 0 and 3 kept", code, stderr, replicas())
	}
	code, _, stderr := runInProcess(t, append(env, "GROUPSYNC_STREAM_REPLICAS=5"), "jobs", "failed")
	if code != 2 || strings.Count(strings.TrimSpace(stderr), "\n") != 0 || !strings.Contains(stderr, "5 replicas refused") {
		t.Fatalf("5 replicas on 3 servers: exit %d, stderr %q; want 2 and one line", code, stderr)
	}
	if got := replicas(); got != 3 {
		t.Errorf("after the refusal %s has %d replicas, want 3", queue.DefaultStream, got)
	}
}
