package s3

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func envMap(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestLoadCredentialsFile(t *testing.T) {
	want := Credentials{AccessKey: "AKIA123", SecretKey: "s3cr3t/with=equals"}
	tests := []struct {
		file    string
		wantErr string // empty: want success
	}{
		{"keyed.txt", ""},
		{"twolines.txt", ""},
		{"aws.txt", ""},
		{"noseckey.txt", "lacks access_key or secret_key"},
		{"oneline.txt", "has 1 bare lines"},
		{"unknown.txt", "has 1 lines besides"},
		{"mixed.txt", "has 1 lines besides"},
		{"missing.txt", "no such file"},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			// Copy with mode 0600 so no permission warning is expected.
			path := filepath.Join(t.TempDir(), tt.file)
			if data, err := os.ReadFile(filepath.Join("testdata", "credentials", tt.file)); err == nil {
				if err := os.WriteFile(path, data, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			got, warning, err := LoadCredentials(envMap(nil), path)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("LoadCredentials = %v; want an error containing %q", err, tt.wantErr)
				}
				for _, secret := range []string{"s3cr3t", "hunter2"} {
					if strings.Contains(err.Error(), secret) {
						t.Errorf("error %q leaks the secret", err)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("LoadCredentials: %v", err)
			}
			if got != want {
				t.Errorf("LoadCredentials = %+v, want %+v", got.AccessKey, want.AccessKey)
			}
			if warning != "" {
				t.Errorf("unexpected warning for a 0600 file: %s", warning)
			}
		})
	}
}

func TestLoadCredentialsPermissionWarning(t *testing.T) {
	for _, mode := range []os.FileMode{0o640, 0o604, 0o644} {
		path := filepath.Join(t.TempDir(), "cred")
		if err := os.WriteFile(path, []byte("a\nb\n"), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
		_, warning, err := LoadCredentials(envMap(nil), path)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(warning, "chmod 600 "+path) || !strings.Contains(warning, fmt.Sprintf("%04o", mode)) {
			t.Errorf("mode %04o: warning %q; want one naming the mode and the chmod fix", mode, warning)
		}
	}
}

func TestLoadCredentialsSources(t *testing.T) {
	credDir := t.TempDir()
	write := func(name, content string) {
		if err := os.WriteFile(filepath.Join(credDir, name), []byte(content), 0o400); err != nil {
			t.Fatal(err)
		}
	}
	write("custom", "access_key=fromcustom\nsecret_key=s1\n")
	write(CredentialName, "fromsystemd\ns2\n")
	emptyDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(emptyDir, CredentialName), []byte("\n"), 0o400); err != nil {
		t.Fatal(err)
	}
	// What piosnap.service's SetCredential= fallback leaves when
	// /etc/piosnap/s3.credentials is missing.
	commentDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(commentDir, CredentialName), []byte("# no /etc/piosnap/s3.credentials"), 0o400); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		env        map[string]string
		file       string
		wantAccess string
		wantErr    string
	}{
		{"piosnap env", map[string]string{"PIOSNAP_S3_ACCESS_KEY": "p", "PIOSNAP_S3_SECRET_KEY": "ps", "AWS_ACCESS_KEY_ID": "a", "AWS_SECRET_ACCESS_KEY": "as"}, "", "p", ""},
		{"aws env", map[string]string{"AWS_ACCESS_KEY_ID": "a", "AWS_SECRET_ACCESS_KEY": "as"}, "", "a", ""},
		{"file beats env", map[string]string{"AWS_ACCESS_KEY_ID": "a", "AWS_SECRET_ACCESS_KEY": "as", "CREDENTIALS_DIRECTORY": credDir}, "custom", "fromcustom", ""},
		{"systemd default", map[string]string{"CREDENTIALS_DIRECTORY": credDir}, "", "fromsystemd", ""},
		{"env beats systemd default", map[string]string{"CREDENTIALS_DIRECTORY": credDir, "AWS_ACCESS_KEY_ID": "a", "AWS_SECRET_ACCESS_KEY": "as"}, "", "a", ""},
		{"half env", map[string]string{"AWS_ACCESS_KEY_ID": "a"}, "", "", "AWS_SECRET_ACCESS_KEY is not"},
		{"half piosnap env", map[string]string{"PIOSNAP_S3_SECRET_KEY": "s"}, "", "", "PIOSNAP_S3_ACCESS_KEY is not"},
		{"nothing", nil, "", "", "no S3 credentials"},
		{"empty credentials dir", map[string]string{"CREDENTIALS_DIRECTORY": t.TempDir()}, "", "", "no S3 credentials"},
		{"empty systemd credential", map[string]string{"CREDENTIALS_DIRECTORY": emptyDir}, "", "", "no S3 credentials"},
		{"comment-only systemd credential", map[string]string{"CREDENTIALS_DIRECTORY": commentDir}, "", "", "no S3 credentials"},
		{"env beats comment-only systemd credential", map[string]string{"CREDENTIALS_DIRECTORY": commentDir, "AWS_ACCESS_KEY_ID": "a", "AWS_SECRET_ACCESS_KEY": "as"}, "", "a", ""},
		{"bare name without credentials dir", nil, "custom-nowhere", "", "custom-nowhere"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, _, err := LoadCredentials(envMap(tt.env), tt.file)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("LoadCredentials = %v; want an error containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("LoadCredentials: %v", err)
			}
			if got.AccessKey != tt.wantAccess {
				t.Errorf("access key = %q, want %q", got.AccessKey, tt.wantAccess)
			}
		})
	}
}

func TestCredentialsRedacted(t *testing.T) {
	c := Credentials{AccessKey: "AKIAVISIBLE", SecretKey: "topsecretvalue"}
	var logs bytes.Buffer
	slog.New(slog.NewTextHandler(&logs, nil)).Info("loaded", "creds", c)
	slog.New(slog.NewJSONHandler(&logs, nil)).Info("loaded", "creds", c)
	for _, s := range []string{fmt.Sprint(c), fmt.Sprintf("%v %+v %#v %s", c, c, c, c), logs.String()} {
		if strings.Contains(s, c.SecretKey) || strings.Contains(s, c.AccessKey) {
			t.Errorf("credentials visible in %q", s)
		}
	}
}
