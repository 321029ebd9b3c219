package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

type composeFile struct {
	Services map[string]struct {
		Image         string            `yaml:"image"`
		Build         any               `yaml:"build"`
		Command       []string          `yaml:"command"`
		Environment   map[string]string `yaml:"environment"`
		Healthcheck   map[string]any    `yaml:"healthcheck"`
		Ports         []any             `yaml:"ports"`
		Expose        []any             `yaml:"expose"`
		ContainerName string            `yaml:"container_name"`
		User          string            `yaml:"user"`
		Secrets       []any             `yaml:"secrets"`
	} `yaml:"services"`
	Secrets map[string]struct {
		File string `yaml:"file"`
	} `yaml:"secrets"`
}

// TestDockerCompose validates docker-compose.yml with docker-compose itself
// (Debian's docker-compose package) and checks the settings that durability
// depends on.
func TestDockerCompose(t *testing.T) {
	cf := composeConfig(t)
	for _, name := range []string{"nats", "redis", "serve", "worker", "emulator"} {
		svc, ok := cf.Services[name]
		if !ok {
			t.Errorf("service %s missing", name)
			continue
		}
		if len(svc.Healthcheck) == 0 {
			t.Errorf("service %s has no health check", name)
		}
	}
	nats := cf.Services["nats"]
	if !strings.HasPrefix(nats.Image, "nats:2.1") {
		t.Errorf("nats image %q, want 2.10 or later", nats.Image)
	}
	conf, err := os.ReadFile("../../deploy/nats.conf")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(conf), "sync_interval: always") || !strings.Contains(string(conf), "jetstream") {
		t.Error("deploy/nats.conf must enable JetStream with sync_interval: always")
	}
	redis := strings.Join(cf.Services["redis"].Command, " ")
	for _, want := range []string{"--appendonly yes", "--maxmemory-policy noeviction"} {
		if !strings.Contains(redis, want) {
			t.Errorf("redis command %q lacks %q", redis, want)
		}
	}
	worker := cf.Services["worker"]
	if worker.ContainerName != "" || len(worker.Ports) != 0 {
		t.Error("worker must be scalable: no container_name and no host ports")
	}
	for _, role := range []string{"serve", "worker", "emulator"} {
		if got := cf.Services[role].Command; len(got) == 0 || got[0] != role {
			t.Errorf("service %s runs %v, want groupsync %s", role, got, role)
		}
	}
	for _, svc := range []string{"serve", "worker"} {
		env := cf.Services[svc].Environment
		for _, k := range []string{"GROUPSYNC_NATS_URL", "GROUPSYNC_REDIS_URL", "GROUPSYNC_IDENTITY_SECRET", "GROUPSYNC_JOB_KEY", "GROUPSYNC_COMETCHAT_APP_ID"} {
			if env[k] == "" {
				t.Errorf("service %s lacks %s", svc, k)
			}
		}
		if !strings.Contains(env["GROUPSYNC_NATS_URL"], ":natspw@") || !strings.Contains(env["GROUPSYNC_REDIS_URL"], ":redispw@") {
			t.Errorf("service %s connects to NATS (%s) or Redis without the password", svc, env["GROUPSYNC_NATS_URL"])
		}
	}
	checkComposeEdges(t, cf, string(conf))
}

// checkComposeEdges checks the trust boundaries of the compose file: only
// serve publishes a port; NATS and Redis want passwords; the emulator's
// fault API is off; the owner key is a secret of the worker's user.
func checkComposeEdges(t *testing.T, cf composeFile, natsConf string) {
	t.Helper()
	for _, name := range []string{"nats", "redis", "emulator", "worker"} {
		if p := cf.Services[name].Ports; len(p) != 0 {
			t.Errorf("service %s publishes ports %v; only serve may", name, p)
		}
	}
	for _, p := range cf.Services["serve"].Ports {
		if !strings.HasPrefix(fmt.Sprint(p), "127.0.0.1:") {
			t.Errorf("serve publishes %v beyond loopback by default", p)
		}
	}
	if !strings.Contains(natsConf, "authorization") || !strings.Contains(natsConf, "$NATS_GROUPSYNC_PASSWORD") {
		t.Error("deploy/nats.conf must require a user and password (authorization block)")
	}
	if strings.Contains(natsConf, "http_port") || !strings.Contains(natsConf, "http: 127.0.0.1:") {
		t.Error("deploy/nats.conf must serve monitoring on the container's loopback only")
	}
	if env := cf.Services["nats"].Environment; env["NATS_GROUPSYNC_PASSWORD"] != "natspw" {
		t.Error("nats does not get GROUPSYNC_NATS_PASSWORD")
	}
	redis := strings.Join(cf.Services["redis"].Command, " ")
	if !strings.Contains(redis, "--requirepass") || cf.Services["redis"].Environment["REDIS_PASSWORD"] != "redispw" {
		t.Errorf("redis runs without a password: %q", redis)
	}
	if v := cf.Services["emulator"].Environment["GROUPSYNC_EMULATOR_DEBUG_API"]; v != "false" {
		t.Errorf("emulator debug API %q, want false", v)
	}
	w := cf.Services["worker"]
	if w.User == "" || !strings.Contains(fmt.Sprint(w.Secrets), "owner_key") || cf.Secrets["owner_key"].File == "" {
		t.Errorf("worker must run as a fixed user with the owner key as a secret: user %q, secrets %v", w.User, w.Secrets)
	}
	if got := w.Environment["GROUPSYNC_OWNER_KEY_FILE"]; got != "/run/secrets/owner_key" {
		t.Errorf("worker reads the owner key from %q, want the secret mount", got)
	}
}

// TestDockerComposeClusterProfile checks the "cluster" profile: three NATS
// nodes with authentication, Redis with a replica and Sentinels, serve and
// worker pointed at all of them with streams of three replicas, and no port
// published but serve's.
func TestDockerComposeClusterProfile(t *testing.T) {
	cf := composeConfig(t, "--profile", "cluster")
	for _, name := range []string{"nats-1", "nats-2", "nats-3", "redis-master", "redis-replica", "sentinel-1", "sentinel-2", "sentinel-3", "worker-ha"} {
		svc, ok := cf.Services[name]
		if !ok {
			t.Errorf("service %s missing from the cluster profile", name)
			continue
		}
		if len(svc.Ports) != 0 {
			t.Errorf("service %s publishes ports %v; only serve may", name, svc.Ports)
		}
	}
	for i := 1; i <= 3; i++ {
		conf, err := os.ReadFile(fmt.Sprintf("../../deploy/nats-cluster/nats-%d.conf", i))
		if err != nil {
			t.Fatal(err)
		}
		c := string(conf)
		for _, want := range []string{"$NATS_GROUPSYNC_PASSWORD", "http: 127.0.0.1:", "cluster {", "sync_interval: always", fmt.Sprintf("server_name: nats-%d", i)} {
			if !strings.Contains(c, want) {
				t.Errorf("deploy/nats-cluster/nats-%d.conf lacks %q", i, want)
			}
		}
		if cf.Services[fmt.Sprintf("nats-%d", i)].Environment["NATS_GROUPSYNC_PASSWORD"] != "natspw" {
			t.Errorf("nats-%d does not get GROUPSYNC_NATS_PASSWORD", i)
		}
	}
	for _, name := range []string{"redis-master", "redis-replica"} {
		if c := strings.Join(cf.Services[name].Command, " "); !strings.Contains(c, "--requirepass") || !strings.Contains(c, "--appendonly yes") {
			t.Errorf("%s runs %q, want a password and the append-only file", name, c)
		}
	}
	for _, svc := range []string{"serve-ha", "worker-ha"} {
		env := cf.Services[svc].Environment
		if n := strings.Count(env["GROUPSYNC_NATS_URL"], "groupsync:natspw@nats-"); n != 3 {
			t.Errorf("%s NATS URL names %d cluster nodes with the password, want 3", svc, n)
		}
		if !strings.HasPrefix(env["GROUPSYNC_REDIS_URL"], "redis+sentinel://:redispw@") || !strings.HasSuffix(env["GROUPSYNC_REDIS_URL"], "/groupsync") {
			t.Errorf("%s Redis URL is not the Sentinels' with the password and master name", svc)
		}
		if env["GROUPSYNC_STREAM_REPLICAS"] != "3" {
			t.Errorf("%s GROUPSYNC_STREAM_REPLICAS = %q, want 3", svc, env["GROUPSYNC_STREAM_REPLICAS"])
		}
	}
	for _, p := range cf.Services["serve-ha"].Ports {
		if !strings.HasPrefix(fmt.Sprint(p), "127.0.0.1:") {
			t.Errorf("serve-ha publishes %v beyond loopback by default", p)
		}
	}
}

// composeConfig runs `docker-compose [args] config` on docker-compose.yml
// with every required variable set (passwords natspw and redispw) and
// parses what it prints.
func composeConfig(t *testing.T, args ...string) composeFile {
	t.Helper()
	if _, err := exec.LookPath("docker-compose"); err != nil {
		t.Fatal("docker-compose not found: install it with `apt-get install docker-compose` (only its config check runs, no engine needed)")
	}
	cmd := exec.Command("docker-compose", append(append([]string{"-f", "../../docker-compose.yml"}, args...), "config")...)
	cmd.Env = append(os.Environ(),
		"GROUPSYNC_VIRGIL_APP_ID=app", "GROUPSYNC_VIRGIL_APP_KEY_ID=kid", "GROUPSYNC_VIRGIL_APP_KEY=key",
		"GROUPSYNC_IDENTITY_SECRET=secret", "GROUPSYNC_WEBHOOK_USERNAME=user", "GROUPSYNC_WEBHOOK_PASSWORD=pass",
		"GROUPSYNC_COMETCHAT_APP_ID=cc", "GROUPSYNC_NATS_PASSWORD=natspw", "GROUPSYNC_REDIS_PASSWORD=redispw",
		"GROUPSYNC_JOB_KEY=jobkey")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("docker-compose %v config: %v\n%s", args, err, stderr.String())
	}
	var cf composeFile
	if err := yaml.Unmarshal(out, &cf); err != nil {
		t.Fatalf("parse docker-compose config output: %v", err)
	}
	return cf
}
