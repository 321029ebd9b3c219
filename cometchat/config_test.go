package cometchat_test

import (
	"context"
	"strings"
	"testing"

	"github.com/groupsync/groupsync/cometchat"
	"github.com/groupsync/groupsync/cometchat/cometchattest"
)

// TestBaseURL: one meaning of the API URL (scheme and host, optional path
// prefix, without /v3), with a trailing /v3 accepted as the same.
func TestBaseURL(t *testing.T) {
	for _, tt := range []struct {
		cfg  cometchat.Config
		want string
	}{
		{cometchat.Config{AppID: "208136f5ba34a5a2", Region: "eu"}, "https://208136f5ba34a5a2.api-eu.cometchat.io"},
		{cometchat.Config{AppID: "app1"}, "https://app1.api-us.cometchat.io"},
		{cometchat.Config{BaseURL: "https://app1.api-us.cometchat.io"}, "https://app1.api-us.cometchat.io"},
		{cometchat.Config{BaseURL: "https://app1.api-us.cometchat.io/"}, "https://app1.api-us.cometchat.io"},
		{cometchat.Config{BaseURL: "https://app1.api-us.cometchat.io/v3"}, "https://app1.api-us.cometchat.io"},
		{cometchat.Config{BaseURL: "https://app1.api-us.cometchat.io/v3/"}, "https://app1.api-us.cometchat.io"},
		{cometchat.Config{BaseURL: "https://proxy.example/cometchat/v3"}, "https://proxy.example/cometchat"},
		{cometchat.Config{BaseURL: "http://127.0.0.1:9"}, "http://127.0.0.1:9"},
		{cometchat.Config{BaseURL: "http://localhost:9/v3"}, "http://localhost:9"},
		{cometchat.Config{BaseURL: "http://[::1]:9"}, "http://[::1]:9"},
	} {
		tt.cfg.APIKey = "k"
		c, err := cometchat.New(tt.cfg)
		if err != nil || c.BaseURL() != tt.want {
			t.Errorf("New(%+v).BaseURL() = %v, want %q", tt.cfg, err, tt.want)
			continue
		}
	}
	for name, cfg := range map[string]cometchat.Config{
		"NoAPIKey":       {AppID: "app1"},
		"NoAppIDNorURL":  {APIKey: "k"},
		"AppIDWithDot":   {AppID: "evil.example/x", APIKey: "k"},
		"AppIDWithSlash": {AppID: "a/b", APIKey: "k"},
		"RegionWithDot":  {AppID: "app1", Region: "us.evil.example", APIKey: "k"},
		"UserInfo":       {BaseURL: "https://user:pass@app1.api-us.cometchat.io", APIKey: "k"},
		"Query":          {BaseURL: "https://app1.api-us.cometchat.io/?x=1", APIKey: "k"},
		"Fragment":       {BaseURL: "https://app1.api-us.cometchat.io/#x", APIKey: "k"},
		"PlainHTTP":      {BaseURL: "http://app1.api-us.cometchat.io", APIKey: "k"},
		"OtherScheme":    {BaseURL: "ftp://app1.api-us.cometchat.io", APIKey: "k"},
		"NoHost":         {BaseURL: "https:///v3", APIKey: "k"},
		"Relative":       {BaseURL: "/v3", APIKey: "k"},
	} {
		c, err := cometchat.New(cfg)
		if err == nil {
			t.Errorf("%s: New(%+v) = %s, want an error", name, cfg, c.BaseURL())
			continue
		}
		if strings.Contains(err.Error(), "pass") {
			t.Errorf("%s: error %q shows the URL's password", name, err)
		}
		if strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: error %q is not one line", name, err)
		}
	}
}

// TestNewReportsEveryInvalidSetting: a config with several mistakes is
// refused with all of them, as the other packages' configs are.
func TestNewReportsEveryInvalidSetting(t *testing.T) {
	_, err := cometchat.New(cometchat.Config{AppID: "a/b", Region: "us.evil.example"})
	for _, want := range []string{"API key", "app id", "region"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("New with no key, a bad app id and a bad region = %v, which does not name the %s", err, want)
		}
	}
}

// TestBaseURLWithV3SameRequests: the old spelling with /v3 and the new one
// without reach the same endpoints.
func TestBaseURLWithV3SameRequests(t *testing.T) {
	f := cometchattest.Start(t)
	f.SetGroup("g1", "alice")
	f.AddToken("alice", "tok-alice")
	for _, base := range []string{f.URL(), f.URL() + "/v3", f.URL() + "/v3/"} {
		c, err := cometchat.New(cometchat.Config{BaseURL: base, APIKey: f.APIKey})
		if err != nil {
			t.Fatal(err)
		}
		if m, err := c.Members(context.Background(), "g1"); err != nil || len(m) != 1 {
			t.Errorf("Members with base %s = %v, %v; want alice", base, m, err)
		}
		if err := c.CheckAuthToken(context.Background(), "alice", "tok-alice"); err != nil {
			t.Errorf("CheckAuthToken with base %s = %v", base, err)
		}
	}
}
