package virgil_test

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"testing"

	"github.com/groupsync/groupsync/internal/testkit"
	"github.com/groupsync/groupsync/virgil"
)

type steFile struct {
	Cases []struct {
		Name          string   `json:"name"`
		Signer        string   `json:"signer"`
		Recipients    []string `json:"recipients"`
		VerifyWith    string   `json:"verify_with"`
		RecipientIDs  []string `json:"recipient_key_ids_hex"`
		Plaintext     string   `json:"plaintext_b64"`
		Metadata      string   `json:"metadata_b64"`
		EncryptedData string   `json:"encrypted_data_b64"`
		Results       map[string]struct {
			OK        bool   `json:"ok"`
			Plaintext string `json:"plaintext_b64"`
			ErrorName string `json:"error_name"`
			Message   string `json:"error_message"`
		} `json:"decrypt_results"`
		Expected *struct {
			Status string `json:"status"`
		} `json:"expected_error"`
	} `json:"cases"`
}

type decodedFile struct {
	SignThenEncrypt map[string]map[string]struct {
		SignerIDHex    string   `json:"signer_id_hex"`
		RecipientOrder []string `json:"recipient_order_hex"`
		ParamOrder     []string `json:"custom_param_order"`
		GCMNonceHex    string   `json:"gcm_nonce_hex"`
	} `json:"sign_then_encrypt"`
}

func TestDecryptThenVerifyVectors(t *testing.T) {
	kf := loadKeys(t)
	var sf steFile
	testkit.LoadVector(t, "sign-then-encrypt.json", &sf)
	var df decodedFile
	testkit.LoadVector(t, "decoded.json", &df)
	if len(sf.Cases) < 4 {
		t.Fatalf("only %d cases in the vector", len(sf.Cases))
	}
	for _, c := range sf.Cases {
		t.Run(c.Name, func(t *testing.T) {
			meta, value := unb64(t, c.Metadata), unb64(t, c.EncryptedData)
			signer := mustKey(t, kf, c.Signer).Public()
			info, err := virgil.ParseMessageInfo(meta)
			if err != nil {
				t.Fatalf("ParseMessageInfo: %v", err)
			}
			if got := hex.EncodeToString(info.SignerID); got != hex.EncodeToString(signer.ID()) {
				t.Errorf("SignerID = %s, want %x", got, signer.ID())
			}
			if len(info.Recipients) != len(c.Recipients) {
				t.Errorf("%d recipients, want %d", len(info.Recipients), len(c.Recipients))
			}
			if dec, ok := df.SignThenEncrypt[c.Name]; ok {
				for _, d := range dec {
					for i, id := range d.RecipientOrder {
						if got := hex.EncodeToString(info.Recipients[i].KeyID); got != id {
							t.Errorf("recipient %d = %s, want %s", i, got, id)
						}
					}
					if fmt.Sprint(info.ParamOrder) != fmt.Sprint(d.ParamOrder) {
						t.Errorf("ParamOrder = %v, want %v", info.ParamOrder, d.ParamOrder)
					}
					if hex.EncodeToString(info.Nonce) != d.GCMNonceHex {
						t.Errorf("Nonce = %x, want %s", info.Nonce, d.GCMNonceHex)
					}
					break
				}
			}
			if c.Expected != nil {
				if c.Expected.Status != "INVALID_SIGNATURE" {
					t.Fatalf("unknown expected error %q", c.Expected.Status)
				}
				_, err := virgil.DecryptThenVerify(meta, value, mustKey(t, kf, c.Recipients[0]), mustKey(t, kf, c.VerifyWith).Public())
				if !errors.Is(err, virgil.ErrInvalidSignature) {
					t.Fatalf("DecryptThenVerify(verify with %s) = %v, want ErrInvalidSignature", c.VerifyWith, err)
				}
				plain, err := virgil.DecryptThenVerify(meta, value, mustKey(t, kf, c.Recipients[0]), signer)
				if err != nil || !bytes.Equal(plain, unb64(t, c.Plaintext)) {
					t.Fatalf("DecryptThenVerify(verify with signer) = %q, %v", plain, err)
				}
				return
			}
			if len(c.Results) == 0 {
				t.Fatal("case lists no decrypt results")
			}
			for who, r := range c.Results {
				key := mustKey(t, kf, who)
				plain, err := virgil.DecryptThenVerify(meta, value, key, signer)
				if r.OK {
					if err != nil || !bytes.Equal(plain, unb64(t, r.Plaintext)) {
						t.Errorf("DecryptThenVerify(%s) = %q, %v; want %q", who, plain, err, unb64(t, r.Plaintext))
					}
					// Several verifiers: the signer id picks the key.
					plain, err = virgil.DecryptThenVerify(meta, value, key, mustKey(t, kf, "carol").Public(), signer)
					if err != nil || !bytes.Equal(plain, unb64(t, r.Plaintext)) {
						t.Errorf("DecryptThenVerify(%s, two verifiers) = %q, %v", who, plain, err)
					}
					_, err = virgil.DecryptThenVerify(meta, value, key, mustKey(t, kf, "carol").Public(), mustKey(t, kf, "bob").Public())
					if !errors.Is(err, virgil.ErrSignerNotFound) {
						t.Errorf("DecryptThenVerify(%s, no signer among verifiers) = %v, want ErrSignerNotFound", who, err)
					}
					continue
				}
				if r.Message != "Recipient defined with id is not found within message info during data decryption." {
					t.Fatalf("unexpected vector error %q", r.Message)
				}
				if !errors.Is(err, virgil.ErrRecipientNotFound) {
					t.Errorf("DecryptThenVerify(%s) = %v, want ErrRecipientNotFound", who, err)
				}
			}
		})
	}
}

func TestSignThenEncryptRoundTrip(t *testing.T) {
	kf := loadKeys(t)
	owner, alice, bob, carol := mustKey(t, kf, "owner"), mustKey(t, kf, "alice"), mustKey(t, kf, "bob"), mustKey(t, kf, "carol")
	data := []byte("epoch message bytes")
	tests := []struct {
		name       string
		recipients []*virgil.PrivateKey
		metaSize   int
	}{
		{"One", []*virgil.PrivateKey{alice}, 485},
		{"Two", []*virgil.PrivateKey{alice, bob}, 740},
		{"Three", []*virgil.PrivateKey{owner, alice, bob}, 994},
		{"Duplicate", []*virgil.PrivateKey{owner, owner, alice}, 994},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pubs := make([]*virgil.PublicKey, len(tt.recipients))
			for i, r := range tt.recipients {
				pubs[i] = r.Public()
			}
			meta, value, err := virgil.SignThenEncrypt(data, owner, pubs)
			if err != nil {
				t.Fatal(err)
			}
			if len(meta) != tt.metaSize {
				t.Errorf("len(meta) = %d, want %d", len(meta), tt.metaSize)
			}
			if len(value) != len(data)+16 {
				t.Errorf("len(value) = %d, want %d", len(value), len(data)+16)
			}
			info, err := virgil.ParseMessageInfo(meta)
			if err != nil {
				t.Fatal(err)
			}
			for i := 1; i < len(info.Recipients); i++ {
				if bytes.Compare(info.Recipients[i-1].KeyID, info.Recipients[i].KeyID) > 0 {
					t.Errorf("recipients not sorted: %x before %x", info.Recipients[i-1].KeyID, info.Recipients[i].KeyID)
				}
			}
			if fmt.Sprint(info.ParamOrder) != "[VIRGIL-DATA-SIGNER-ID VIRGIL-DATA-SIGNATURE]" {
				t.Errorf("ParamOrder = %v", info.ParamOrder)
			}
			for _, r := range tt.recipients {
				plain, err := virgil.DecryptThenVerify(meta, value, r, owner.Public())
				if err != nil || !bytes.Equal(plain, data) {
					t.Errorf("DecryptThenVerify(%x) = %q, %v", r.ID(), plain, err)
				}
			}
			if _, err := virgil.DecryptThenVerify(meta, value, carol, owner.Public()); !errors.Is(err, virgil.ErrRecipientNotFound) {
				t.Errorf("DecryptThenVerify(not a recipient) = %v, want ErrRecipientNotFound", err)
			}
			tampered := bytes.Clone(value)
			tampered[0] ^= 1
			if _, err := virgil.DecryptThenVerify(meta, tampered, tt.recipients[0], owner.Public()); !errors.Is(err, virgil.ErrDecryption) {
				t.Errorf("DecryptThenVerify(tampered value) = %v, want ErrDecryption", err)
			}
			// Flip a byte of the first ECIES MAC: the recipient of that entry must fail.
			badMeta := bytes.Clone(meta)
			i := bytes.Index(badMeta, []byte{0x05, 0x00, 0x04, 0x30})
			badMeta[i+4] ^= 1
			first, _ := virgil.ParseMessageInfo(badMeta)
			var firstKey *virgil.PrivateKey
			for _, r := range tt.recipients {
				if bytes.Equal(r.ID(), first.Recipients[0].KeyID) {
					firstKey = r
				}
			}
			if _, err := virgil.DecryptThenVerify(badMeta, value, firstKey, owner.Public()); !errors.Is(err, virgil.ErrDecryption) {
				t.Errorf("DecryptThenVerify(tampered ECIES MAC) = %v, want ErrDecryption", err)
			}
		})
	}
	if _, _, err := virgil.SignThenEncrypt(data, owner, nil); err == nil {
		t.Error("SignThenEncrypt(no recipients) = nil error")
	}
}

func TestSignThenEncryptSHA256IDs(t *testing.T) {
	kf := loadKeys(t)
	owner, alice := mustKey(t, kf, "owner"), mustKey(t, kf, "alice")
	c := virgil.Crypto{IDScheme: virgil.KeyIDSHA256}
	meta, value, err := c.SignThenEncrypt([]byte("x"), owner, []*virgil.PublicKey{alice.Public()})
	if err != nil {
		t.Fatal(err)
	}
	info, err := virgil.ParseMessageInfo(meta)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(info.Recipients[0].KeyID, alice.Public().IDFor(virgil.KeyIDSHA256)) ||
		!bytes.Equal(info.SignerID, owner.Public().IDFor(virgil.KeyIDSHA256)) {
		t.Errorf("ids = %x / %x, want SHA-256 ids", info.Recipients[0].KeyID, info.SignerID)
	}
	if _, err := c.DecryptThenVerify(meta, value, alice, owner.Public()); err != nil {
		t.Errorf("DecryptThenVerify(SHA-256 scheme) = %v", err)
	}
	if _, err := virgil.DecryptThenVerify(meta, value, alice, owner.Public()); !errors.Is(err, virgil.ErrRecipientNotFound) {
		t.Errorf("DecryptThenVerify(default scheme) = %v, want ErrRecipientNotFound", err)
	}
}

func TestParseMessageInfoErrors(t *testing.T) {
	kf := loadKeys(t)
	meta, _, err := virgil.SignThenEncrypt([]byte("x"), mustKey(t, kf, "owner"), []*virgil.PublicKey{mustKey(t, kf, "alice").Public()})
	if err != nil {
		t.Fatal(err)
	}
	for _, in := range [][]byte{nil, {0x30, 0x00}, meta[:len(meta)-1], append(bytes.Clone(meta), 0), {0x30, 0x03, 0x02, 0x01, 0x01}} {
		if _, err := virgil.ParseMessageInfo(in); !errors.Is(err, virgil.ErrMalformedMessage) {
			t.Errorf("ParseMessageInfo(%x...) = %v, want ErrMalformedMessage", in[:min(len(in), 8)], err)
		}
	}
}
