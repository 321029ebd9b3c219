package redact_test

import (
	"bytes"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"testing"

	"github.com/groupsync/groupsync/redact"
)

func TestURL(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"NoUserinfo", "nats://127.0.0.1:4222", "nats://127.0.0.1:4222"},
		{"UserPassword", "nats://user:s3cret@nats:4222", "nats://user:REDACTED@nats:4222"},
		{"Token", "nats://t0ken@nats:4222", "nats://REDACTED@nats:4222"},
		{"RedisPasswordOnly", "redis://:hunter2@redis:6379/0", "redis://:REDACTED@redis:6379/0"},
		{"PasswordWithAt", "redis://u:p@ss@redis:6379/0", "redis://u:REDACTED@redis:6379/0"},
		{"PasswordWithSlash", "nats://u:pa/ss@nats:4222", "nats://u:REDACTED@nats:4222"},
		{"List", "nats://a:pw1@n1:4222,nats://a:pw2@n2:4222, nats://n3:4222",
			"nats://a:REDACTED@n1:4222,nats://a:REDACTED@n2:4222, nats://n3:4222"},
		{"SecretQuery", "https://api.example/v3/x?apiKey=abc&page=2&access_token=t&sig=s#frag",
			"https://api.example/v3/x?apiKey=REDACTED&page=2&access_token=REDACTED&sig=REDACTED#frag"},
		{"RedisQueryPassword", "redis://redis:6379?db=1;password=pw", "redis://redis:6379?db=1;password=REDACTED"},
		{"AtInPathOnly", "https://host/users/a@b", "https://host/users/a@b"},
		{"NotAURL", "just text", "just text"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := redact.URL(tt.in); got != tt.want {
				t.Errorf("URL(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestTextMalformedURL(t *testing.T) {
	_, err := url.Parse("nats://user:secr%zzet@host:4222")
	if err == nil || !strings.Contains(err.Error(), "secr%zzet") {
		t.Fatalf("url.Parse error %v does not quote the URL; the test premise is gone", err)
	}
	got := redact.Text("connect: " + err.Error())
	if strings.Contains(got, "secr") {
		t.Errorf("Text(%q) = %q, still holds the password", err.Error(), got)
	}
	if !strings.Contains(got, "nats://user:REDACTED@host:4222") {
		t.Errorf("Text(%q) = %q, want the URL kept with the password masked", err.Error(), got)
	}
}

func TestError(t *testing.T) {
	base := errors.New("refused")
	err := fmt.Errorf("connect to nats://u:pw@h:1: %w", base)
	red := redact.Error(err)
	if strings.Contains(red.Error(), "pw@") || !strings.Contains(red.Error(), "u:REDACTED@h:1") {
		t.Errorf("Error(%v) = %q", err, red)
	}
	if !errors.Is(red, base) {
		t.Error("the redacted error does not wrap the original")
	}
	if redact.Error(nil) != nil {
		t.Error("Error(nil) != nil")
	}
	if plain := errors.New("no url"); redact.Error(plain) != plain {
		t.Error("an error without URL is not returned as is")
	}
}

func TestWriter(t *testing.T) {
	var buf bytes.Buffer
	w := redact.Writer(&buf)
	line := `{"level":"error","error":"dial nats://u:topsecret@h:4222 failed"}` + "\n"
	n, err := w.Write([]byte(line))
	if err != nil || n != len(line) {
		t.Fatalf("Write = %d, %v; want %d, nil", n, err, len(line))
	}
	if strings.Contains(buf.String(), "topsecret") || !strings.Contains(buf.String(), "u:REDACTED@h:4222") {
		t.Errorf("wrote %q", buf.String())
	}
}

func TestJSON(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"Job", `{"id":"k.1","event":{"guid":"g","members":[{"uid":"bob"}],"members_count":2}}`,
			`{"event":{"guid":"g","members":[{"uid":"bob"}],"members_count":2},"id":"k.1"}`},
		{"SecretKeys", `{"appKey":"a","job_key":{"x":1},"Signature":"s","apiToken":7,"password":null,"name":"n"}`,
			`{"Signature":"REDACTED","apiToken":"REDACTED","appKey":"REDACTED","job_key":"REDACTED","name":"n","password":"REDACTED"}`},
		{"NestedURL", `[{"url":"nats://u:pw@h:4222"},"redis://:pw@r"]`,
			`[{"url":"nats://u:REDACTED@h:4222"},"redis://:REDACTED@r"]`},
		{"BigNumber", `{"n":12345678901234567890}`, `{"n":12345678901234567890}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := redact.JSON([]byte(tt.in))
			if err != nil || string(got) != tt.want {
				t.Errorf("JSON(%s) = %s, %v; want %s", tt.in, got, err, tt.want)
			}
		})
	}
	for _, bad := range []string{"", "not json", `{"a":1} {"b":2}`, `{"password":"pw"`} {
		if got, err := redact.JSON([]byte(bad)); !errors.Is(err, redact.ErrNotJSON) || got != nil {
			t.Errorf("JSON(%q) = %q, %v; want nil, ErrNotJSON", bad, got, err)
		}
	}
}
