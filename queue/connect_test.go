package queue_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nkeys"

	"github.com/groupsync/groupsync/queue"
	"github.com/groupsync/groupsync/queue/natstest"
)

// connectCase is one way of authenticating: the server it needs, a config
// that gets in and one that must be refused.
type connectCase struct {
	name   string
	server func(t *testing.T) (*natstest.Server, queue.ConnectConfig, queue.ConnectConfig)
	// secret must appear in no error message.
	secret string
}

func TestConnectAuth(t *testing.T) {
	const password = "pa55-w0rd-in-url"
	const token = "t0ken-0f-the-server"
	cases := []connectCase{
		{name: "UserPasswordInURL", secret: password, server: func(t *testing.T) (*natstest.Server, queue.ConnectConfig, queue.ConnectConfig) {
			s := natstest.Run(t, natstest.WithOptions(func(o *server.Options) {
				o.Users = []*server.User{{Username: "groupsync", Password: password}}
			}))
			good := queue.ConnectConfig{URL: withUserinfo(s.URL(), "groupsync:"+password)}
			bad := queue.ConnectConfig{URL: withUserinfo(s.URL(), "groupsync:"+password+"x")}
			return s, good, bad
		}},
		{name: "Token", secret: token, server: func(t *testing.T) (*natstest.Server, queue.ConnectConfig, queue.ConnectConfig) {
			s := natstest.Run(t, natstest.WithOptions(func(o *server.Options) { o.Authorization = token }))
			return s, queue.ConnectConfig{URL: s.URL(), Token: token}, queue.ConnectConfig{URL: s.URL(), Token: token + "x"}
		}},
		{name: "TokenInURL", secret: token, server: func(t *testing.T) (*natstest.Server, queue.ConnectConfig, queue.ConnectConfig) {
			s := natstest.Run(t, natstest.WithOptions(func(o *server.Options) { o.Authorization = token }))
			return s, queue.ConnectConfig{URL: withUserinfo(s.URL(), token)}, queue.ConnectConfig{URL: withUserinfo(s.URL(), token+"x")}
		}},
		{name: "NKey", server: func(t *testing.T) (*natstest.Server, queue.ConnectConfig, queue.ConnectConfig) {
			user, pub := mustUserKey(t)
			other, _ := mustUserKey(t)
			s := natstest.Run(t, natstest.WithOptions(func(o *server.Options) {
				o.Nkeys = []*server.NkeyUser{{Nkey: pub}}
			}))
			return s, queue.ConnectConfig{URL: s.URL(), NKeyFile: writeSeed(t, user)},
				queue.ConnectConfig{URL: s.URL(), NKeyFile: writeSeed(t, other)}
		}},
		{name: "CredsFile", server: func(t *testing.T) (*natstest.Server, queue.ConnectConfig, queue.ConnectConfig) {
			op, err := nkeys.CreateOperator()
			if err != nil {
				t.Fatal(err)
			}
			opub, _ := op.PublicKey()
			acc, _ := nkeys.CreateAccount()
			apub, _ := acc.PublicKey()
			ac := jwt.NewAccountClaims(apub)
			ac.Limits.JetStreamLimits = jwt.JetStreamLimits{MemoryStorage: -1, DiskStorage: -1, Streams: -1, Consumer: -1}
			ajwt, err := ac.Encode(op)
			if err != nil {
				t.Fatal(err)
			}
			sys, _ := nkeys.CreateAccount()
			syspub, _ := sys.PublicKey()
			sysjwt, err := jwt.NewAccountClaims(syspub).Encode(op)
			if err != nil {
				t.Fatal(err)
			}
			resolver := &server.MemAccResolver{}
			for pub, jwt := range map[string]string{apub: ajwt, syspub: sysjwt} {
				if err := resolver.Store(pub, jwt); err != nil {
					t.Fatal(err)
				}
			}
			s := natstest.Run(t, natstest.WithOptions(func(o *server.Options) {
				o.TrustedKeys = []string{opub}
				o.AccountResolver = resolver
				o.SystemAccount = syspub
			}))
			good := writeCreds(t, acc)
			stranger, _ := nkeys.CreateAccount() // not known to the server
			return s, queue.ConnectConfig{URL: s.URL(), CredsFile: good}, queue.ConnectConfig{URL: s.URL(), CredsFile: writeCreds(t, stranger)}
		}},
		{name: "TLSClientCertificate", server: func(t *testing.T) (*natstest.Server, queue.ConnectConfig, queue.ConnectConfig) {
			pki := newPKI(t)
			tc, err := server.GenTLSConfig(&server.TLSConfigOpts{CertFile: pki.serverCert, KeyFile: pki.serverKey, CaFile: pki.ca, Verify: true})
			if err != nil {
				t.Fatal(err)
			}
			s := natstest.Run(t, natstest.WithOptions(func(o *server.Options) {
				o.TLS, o.TLSVerify, o.TLSConfig, o.TLSTimeout = true, true, tc, 2
			}))
			good := queue.ConnectConfig{URL: s.URL(), TLSCAFile: pki.ca, TLSCertFile: pki.clientCert, TLSKeyFile: pki.clientKey}
			// Trusting the server but showing no client certificate.
			bad := queue.ConnectConfig{URL: s.URL(), TLSCAFile: pki.ca}
			return s, good, bad
		}},
		{name: "TLSUnknownServer", server: func(t *testing.T) (*natstest.Server, queue.ConnectConfig, queue.ConnectConfig) {
			pki := newPKI(t)
			other := newPKI(t)
			tc, err := server.GenTLSConfig(&server.TLSConfigOpts{CertFile: pki.serverCert, KeyFile: pki.serverKey})
			if err != nil {
				t.Fatal(err)
			}
			s := natstest.Run(t, natstest.WithOptions(func(o *server.Options) {
				o.TLS, o.TLSConfig, o.TLSTimeout = true, tc, 2
			}))
			// The bad config trusts another authority: the server's
			// certificate must not be accepted.
			return s, queue.ConnectConfig{URL: s.URL(), TLSCAFile: pki.ca}, queue.ConnectConfig{URL: s.URL(), TLSCAFile: other.ca}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, good, bad := tc.server(t)
			good.Name, bad.Name = "test", "test"
			good.Timeout, bad.Timeout = 2*time.Second, 2*time.Second
			nc, err := queue.Connect(good)
			if err != nil {
				t.Fatalf("Connect(%s) = %v, want a connection", good, err)
			}
			defer nc.Close()
			if err := nc.Flush(); err != nil {
				t.Fatalf("flush on the connection: %v", err)
			}
			nc2, err := queue.Connect(bad)
			if err == nil {
				nc2.Close()
				t.Fatalf("Connect(%s) connected, want it refused", bad)
			}
			if tc.secret != "" && strings.Contains(err.Error(), tc.secret) {
				t.Errorf("Connect error %q holds the secret", err)
			}
		})
	}
}

func TestConnectRefusedWithoutCredentials(t *testing.T) {
	s := natstest.Run(t, natstest.WithOptions(func(o *server.Options) {
		o.Users = []*server.User{{Username: "groupsync", Password: "secret-password"}}
	}))
	_, err := queue.Connect(queue.ConnectConfig{URL: s.URL(), Timeout: 2 * time.Second})
	if err == nil || !strings.Contains(err.Error(), "credentials refused") {
		t.Fatalf("Connect without credentials = %v, want credentials refused", err)
	}
}

func TestConnectServerList(t *testing.T) {
	s := natstest.Run(t)
	dead := freeURL(t)
	// The first server of the list is down; Connect must get to the second.
	nc, err := queue.Connect(queue.ConnectConfig{URL: dead + " , " + s.URL(), Timeout: time.Second})
	if err != nil {
		t.Fatalf("Connect(dead, live) = %v", err)
	}
	defer nc.Close()
	if got := nc.ConnectedUrl(); got != s.URL() {
		t.Errorf("connected to %s, want %s", got, s.URL())
	}
}

func TestConnectConfigErrors(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name string
		cfg  queue.ConnectConfig
		want string
	}{
		{"Empty", queue.ConnectConfig{}, "no server URL"},
		{"BadScheme", queue.ConnectConfig{URL: "http://u:hunter2@nats:4222"}, "scheme"},
		{"Malformed", queue.ConnectConfig{URL: "nats://u:hun%zzter2@nats:4222"}, "server URL"},
		{"NoHost", queue.ConnectConfig{URL: "nats://"}, "no host"},
		{"TwoAuthMethods", queue.ConnectConfig{URL: "nats://u:hunter2@nats:4222", Token: "tok"}, "more than one way"},
		{"CertWithoutKey", queue.ConnectConfig{URL: "nats://nats:4222", TLSCertFile: "c.pem"}, "both"},
		{"MissingCreds", queue.ConnectConfig{URL: "nats://nats:4222", CredsFile: filepath.Join(dir, "none.creds")}, "creds file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := queue.Connect(tt.cfg)
			if !errors.Is(err, queue.ErrInvalidConfig) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Connect(%s) = %v, want ErrInvalidConfig mentioning %q", tt.cfg, err, tt.want)
			}
			if strings.Contains(err.Error(), "hunter2") || strings.Contains(err.Error(), "hun%zzter2") {
				t.Errorf("error %q holds the password", err)
			}
		})
	}
}

// TestConnectRefusesOpenSecretFiles: the creds, NKey seed and TLS key files
// must be regular files that group and others can neither read nor write;
// every such file is reported, in one error, before anything connects. The
// CA and certificate files are public and may be 0644.
func TestConnectRefusesOpenSecretFiles(t *testing.T) {
	open := func(name string) string {
		t.Helper()
		p := writeFile(t, name, []byte("not read"))
		if err := os.Chmod(p, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	creds, seed, key, ca, cert := open("user.creds"), open("user.nk"), open("client-key.pem"), open("ca.pem"), open("client.pem")
	private := writeFile(t, "private-key.pem", []byte("not read"))
	for _, tt := range []struct {
		name   string
		cfg    queue.ConnectConfig
		refuse []string // the paths named in the error
	}{
		{"CredsFile", queue.ConnectConfig{CredsFile: creds}, []string{creds}},
		{"NKeyFile", queue.ConnectConfig{NKeyFile: seed}, []string{seed}},
		{"TLSKeyFile", queue.ConnectConfig{TLSCAFile: ca, TLSCertFile: cert, TLSKeyFile: key}, []string{key}},
		{"Both", queue.ConnectConfig{NKeyFile: seed, TLSCertFile: cert, TLSKeyFile: key}, []string{seed, key}},
		{"FolderAsKey", queue.ConnectConfig{TLSCertFile: cert, TLSKeyFile: t.TempDir()}, []string{"not a regular file"}},
		{"PublicFilesOpen", queue.ConnectConfig{TLSCAFile: ca, TLSCertFile: cert, TLSKeyFile: private}, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tt.cfg.URL = "tls://127.0.0.1:1"
			err := tt.cfg.Validate()
			if tt.refuse == nil {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, queue.ErrInvalidConfig) {
				t.Fatalf("Validate() = %v, want ErrInvalidConfig", err)
			}
			for _, p := range tt.refuse {
				if !strings.Contains(err.Error(), p) {
					t.Errorf("Validate() = %v, want it to name %s", err, p)
				}
			}
			if tt.name != "FolderAsKey" && strings.Count(err.Error(), "chmod 600") != len(tt.refuse) {
				t.Errorf("Validate() = %v, want the chmod fix once per refused file", err)
			}
			if _, err := queue.Connect(tt.cfg); !errors.Is(err, queue.ErrInvalidConfig) {
				t.Errorf("Connect() = %v, want ErrInvalidConfig before connecting", err)
			}
		})
	}
}

// TestConnectErrorRedacted: a failed connect names the servers without the
// user information of their URLs.
func TestConnectErrorRedacted(t *testing.T) {
	url := withUserinfo(freeURL(t), "groupsync:very-secret-pw")
	_, err := queue.Connect(queue.ConnectConfig{URL: url, Timeout: time.Second})
	if err == nil {
		t.Fatal("Connect to a closed port succeeded")
	}
	if !errors.Is(err, queue.ErrUnavailable) {
		t.Errorf("Connect to a closed port = %v, want ErrUnavailable", err)
	}
	if strings.Contains(err.Error(), "very-secret-pw") || !strings.Contains(err.Error(), "groupsync:REDACTED@") {
		t.Errorf("Connect error %q: want the URL with its password redacted", err)
	}
}

func withUserinfo(url, info string) string {
	return strings.Replace(url, "nats://", "nats://"+info+"@", 1)
}

// freeURL returns the URL of a loopback port nobody listens on.
func freeURL(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return "nats://" + addr
}

func mustUserKey(t *testing.T) (nkeys.KeyPair, string) {
	t.Helper()
	kp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	pub, err := kp.PublicKey()
	if err != nil {
		t.Fatal(err)
	}
	return kp, pub
}

func writeSeed(t *testing.T, kp nkeys.KeyPair) string {
	t.Helper()
	seed, err := kp.Seed()
	if err != nil {
		t.Fatal(err)
	}
	return writeFile(t, "user.nk", seed)
}

// writeCreds writes a .creds file of a new user of account acc.
func writeCreds(t *testing.T, acc nkeys.KeyPair) string {
	t.Helper()
	user, upub := mustUserKey(t)
	ujwt, err := jwt.NewUserClaims(upub).Encode(acc)
	if err != nil {
		t.Fatal(err)
	}
	seed, _ := user.Seed()
	creds, err := jwt.FormatUserConfig(ujwt, seed)
	if err != nil {
		t.Fatal(err)
	}
	return writeFile(t, "user.creds", creds)
}

func writeFile(t *testing.T, name string, data []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// pki is a certificate authority with a server certificate for 127.0.0.1
// and a client certificate, as PEM files.
type pki struct {
	ca, serverCert, serverKey, clientCert, clientKey string
}

func newPKI(t *testing.T) pki {
	t.Helper()
	caKey := mustECKey(t)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "groupsync test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	issue := func(serial int64, cn string, usage x509.ExtKeyUsage, ips []net.IP) (string, string) {
		key := mustECKey(t)
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage}, IPAddresses: ips,
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		kder, err := x509.MarshalECPrivateKey(key)
		if err != nil {
			t.Fatal(err)
		}
		return writeFile(t, cn+".pem", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
			writeFile(t, cn+"-key.pem", pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}))
	}
	p := pki{ca: writeFile(t, "ca.pem", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}))}
	p.serverCert, p.serverKey = issue(2, "server", x509.ExtKeyUsageServerAuth, []net.IP{net.IPv4(127, 0, 0, 1)})
	p.clientCert, p.clientKey = issue(3, "client", x509.ExtKeyUsageClientAuth, nil)
	return p
}

func mustECKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}
