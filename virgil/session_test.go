package virgil_test

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/groupsync/groupsync/internal/testkit"
	"github.com/groupsync/groupsync/virgil"
)

type sessionFile struct {
	GroupID   string `json:"group_id"`
	SessionID string `json:"session_id_hex"`
	Epochs    []struct {
		Epoch      uint32 `json:"epoch"`
		SessionID  string `json:"session_id_hex"`
		MessageB64 string `json:"message_b64"`
		MessageHex string `json:"message_hex"`
	} `json:"epochs"`
	GroupMessage struct {
		MessageB64 string `json:"message_b64"`
		Parsed     struct {
			Epoch     uint32 `json:"epochNumber"`
			SessionID string `json:"sessionId"`
		} `json:"parsed"`
	} `json:"group_message"`
	Others []struct {
		GroupID   string `json:"group_id"`
		SessionID string `json:"session_id_hex"`
	} `json:"other_session_ids"`
}

func TestSessionIDVectors(t *testing.T) {
	var sf sessionFile
	testkit.LoadVector(t, "group-session.json", &sf)
	cases := append(sf.Others, struct {
		GroupID   string `json:"group_id"`
		SessionID string `json:"session_id_hex"`
	}{sf.GroupID, sf.SessionID})
	for _, c := range cases {
		got, err := virgil.SessionPath(c.GroupID)
		if err != nil || got != c.SessionID {
			t.Errorf("SessionPath(%q) = %s, %v; want %s", c.GroupID, got, err, c.SessionID)
		}
	}
	for _, short := range []string{"", "123456789", "supergrou"} {
		if _, err := virgil.SessionID(short); !errors.Is(err, virgil.ErrGroupIDTooShort) {
			t.Errorf("SessionID(%q) = %v, want ErrGroupIDTooShort", short, err)
		}
	}
}

func TestEpochMessageVectors(t *testing.T) {
	var sf sessionFile
	testkit.LoadVector(t, "group-session.json", &sf)
	var df struct {
		Epochs []struct {
			Epoch  uint32 `json:"epoch"`
			KeyHex string `json:"key_hex"`
		} `json:"group_session_epochs"`
	}
	testkit.LoadVector(t, "decoded.json", &df)
	for i, e := range sf.Epochs {
		msg := unb64(t, e.MessageB64)
		m, err := virgil.ParseEpochMessage(msg)
		if err != nil {
			t.Fatalf("ParseEpochMessage(epoch %d): %v", e.Epoch, err)
		}
		if m.Epoch != e.Epoch || hex.EncodeToString(m.SessionID) != e.SessionID || hex.EncodeToString(m.Key) != df.Epochs[i].KeyHex {
			t.Errorf("ParseEpochMessage(epoch %d) = %d %x %x", e.Epoch, m.Epoch, m.SessionID, m.Key)
		}
		if got := hex.EncodeToString(m.Marshal()); got != e.MessageHex {
			t.Errorf("Marshal(epoch %d) = %s, want %s", e.Epoch, got, e.MessageHex)
		}
		for _, out := range []string{fmt.Sprint(m), fmt.Sprintf("%+v %#v %x", m, m, m), mustJSON(t, m)} {
			if strings.Contains(out, df.Epochs[i].KeyHex) || bytes.Contains([]byte(out), m.Key) || !strings.Contains(out, "REDACTED") {
				t.Errorf("printed epoch message leaks its key or lacks REDACTED: %s", out)
			}
		}
	}
	if _, err := virgil.ParseEpochMessage(unb64(t, sf.GroupMessage.MessageB64)); !errors.Is(err, virgil.ErrMalformedGroupMessage) {
		t.Errorf("ParseEpochMessage(regular message) = %v, want ErrMalformedGroupMessage", err)
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestNewEpochMessage(t *testing.T) {
	sid, err := virgil.SessionID("cometchat-guid-supergroup-42")
	if err != nil {
		t.Fatal(err)
	}
	for _, epoch := range []uint32{0, 1, 127, 128, 300, 1 << 31} {
		m, err := virgil.NewEpochMessage(sid, epoch, nil)
		if err != nil {
			t.Fatal(err)
		}
		b := m.Marshal()
		if epoch < 128 && (len(b) != 74 || !bytes.Equal(b[:6], []byte{0x08, 0x00, 0x12, 0x46, 0x0a, 0x20})) {
			t.Errorf("Marshal(epoch %d) = %x, want the 74-byte layout", epoch, b)
		}
		back, err := virgil.ParseEpochMessage(b)
		if err != nil || back.Epoch != epoch || !bytes.Equal(back.Key, m.Key) || !bytes.Equal(back.SessionID, sid) {
			t.Errorf("ParseEpochMessage(Marshal(epoch %d)) = %v, %v", epoch, back, err)
		}
	}
	a, _ := virgil.NewEpochMessage(sid, 0, nil)
	b, _ := virgil.NewEpochMessage(sid, 0, nil)
	if bytes.Equal(a.Key, b.Key) {
		t.Error("two new epochs have the same key")
	}
	if _, err := virgil.NewEpochMessage(sid[:31], 0, nil); err == nil {
		t.Error("NewEpochMessage(short session id) = nil error")
	}
}

func TestParseEpochMessageErrors(t *testing.T) {
	var sf sessionFile
	testkit.LoadVector(t, "group-session.json", &sf)
	good := unb64(t, sf.Epochs[1].MessageB64)
	tests := map[string][]byte{
		"Empty":        nil,
		"Truncated":    good[:len(good)-1],
		"VersionOnly":  {0x08, 0x00},
		"ShortSession": {0x08, 0x00, 0x12, 0x05, 0x0a, 0x01, 0x00, 0x10, 0x00},
		"NoKey":        append([]byte{0x08, 0x00, 0x12, 0x24}, good[4:4+36]...),
		"BadWireType":  {0x0b},
		"HugeLength":   {0x12, 0xff, 0xff, 0xff, 0xff, 0x0f},
	}
	// A 64-bit epoch.
	big := []byte{0x0a, 0x20}
	big = append(big, make([]byte, 32)...)
	big = append(big, 0x10, 0xff, 0xff, 0xff, 0xff, 0x1f, 0x1a, 0x20)
	big = append(big, make([]byte, 32)...)
	tests["EpochOverflows"] = append([]byte{0x08, 0x00, 0x12, byte(len(big))}, big...)
	for name, in := range tests {
		t.Run(name, func(t *testing.T) {
			if _, err := virgil.ParseEpochMessage(in); !errors.Is(err, virgil.ErrMalformedGroupMessage) {
				t.Fatalf("ParseEpochMessage(%x) = %v, want ErrMalformedGroupMessage", in, err)
			}
		})
	}
}

func TestParseGroupMessage(t *testing.T) {
	var sf sessionFile
	testkit.LoadVector(t, "group-session.json", &sf)
	msg, err := base64.StdEncoding.DecodeString(sf.GroupMessage.MessageB64)
	if err != nil {
		t.Fatal(err)
	}
	h, err := virgil.ParseGroupMessage(msg)
	if err != nil {
		t.Fatal(err)
	}
	if h.Epoch != sf.GroupMessage.Parsed.Epoch || hex.EncodeToString(h.SessionID) != sf.GroupMessage.Parsed.SessionID {
		t.Errorf("ParseGroupMessage = epoch %d session %x", h.Epoch, h.SessionID)
	}
	var df struct {
		GroupMessage struct {
			SaltHex   string `json:"salt_hex"`
			PaddedLen int    `json:"padded_len"`
		} `json:"group_message"`
	}
	testkit.LoadVector(t, "decoded.json", &df)
	if hex.EncodeToString(h.Salt) != df.GroupMessage.SaltHex || len(h.CipherText) != df.GroupMessage.PaddedLen+16 {
		t.Errorf("salt %x, ciphertext %d bytes; want %s, %d", h.Salt, len(h.CipherText), df.GroupMessage.SaltHex, df.GroupMessage.PaddedLen+16)
	}
	if _, err := virgil.ParseGroupMessage(unb64(t, sf.Epochs[0].MessageB64)); !errors.Is(err, virgil.ErrMalformedGroupMessage) {
		t.Errorf("ParseGroupMessage(epoch message) = %v, want ErrMalformedGroupMessage", err)
	}
}
