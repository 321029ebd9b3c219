package main

import (
	"bytes"
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
		ContainerName string            `yaml:"container_name"`
	} `yaml:"services"`
}

// TestDockerCompose validates docker-compose.yml with docker-compose itself
// (Debian's docker-compose package) and checks the settings that durability
// depends on.
func TestDockerCompose(t *testing.T) {
	if _, err := exec.LookPath("docker-compose"); err != nil {
		t.Fatal("docker-compose not found: install it with `apt-get install docker-compose` (only its config check runs, no engine needed)")
	}
	cmd := exec.Command("docker-compose", "-f", "../../docker-compose.yml", "config")
	cmd.Env = append(os.Environ(),
		"GROUPSYNC_VIRGIL_APP_ID=app", "GROUPSYNC_VIRGIL_APP_KEY_ID=kid", "GROUPSYNC_VIRGIL_APP_KEY=key",
		"GROUPSYNC_IDENTITY_SECRET=secret", "GROUPSYNC_WEBHOOK_USERNAME=user", "GROUPSYNC_WEBHOOK_PASSWORD=pass",
		"GROUPSYNC_COMETCHAT_APP_ID=cc")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("docker-compose config: %v\n%s", err, stderr.String())
	}
	var cf composeFile
	if err := yaml.Unmarshal(out, &cf); err != nil {
		t.Fatalf("parse docker-compose config output: %v", err)
	}
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
		for _, k := range []string{"GROUPSYNC_NATS_URL", "GROUPSYNC_REDIS_URL", "GROUPSYNC_IDENTITY_SECRET"} {
			if env[k] == "" {
				t.Errorf("service %s lacks %s", svc, k)
			}
		}
	}
}
