package s3

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
)

// CredentialName is the systemd credential LoadCredentials looks for in
// $CREDENTIALS_DIRECTORY when nothing else is configured, as set by
// LoadCredential=s3:/etc/piosnap/s3.credentials in piosnap.service.
const CredentialName = "s3"

// Credentials are an S3 access key and secret key. Their String, GoString
// and slog forms are redacted, so printing or logging them leaks nothing.
type Credentials struct {
	AccessKey, SecretKey string
}

// String returns a redacted description.
func (Credentials) String() string { return "s3 credentials [REDACTED]" }

// GoString returns a redacted description for %#v.
func (c Credentials) GoString() string { return c.String() }

// LogValue keeps the keys out of slog output.
func (c Credentials) LogValue() slog.Value { return slog.StringValue(c.String()) }

// LoadCredentials finds S3 credentials, first match wins:
//
//  1. file, if not empty. A bare name (no slash) is looked up in
//     $CREDENTIALS_DIRECTORY when that is set (systemd LoadCredential=).
//  2. PIOSNAP_S3_ACCESS_KEY and PIOSNAP_S3_SECRET_KEY.
//  3. AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY.
//  4. $CREDENTIALS_DIRECTORY/s3 (CredentialName), if it exists and holds
//     more than blank and comment lines: piosnap.service's fallback
//     SetCredential=s3:# no /etc/piosnap/s3.credentials stands for "no S3
//     keys".
//
// A file holds "access_key = …" and "secret_key = …" lines, or just two
// lines: the access key, then the secret key. Blank lines and lines
// starting with # are ignored. env is usually os.Getenv. The returned
// warning is not empty when the file is readable by group or others.
func LoadCredentials(env func(string) string, file string) (Credentials, string, error) {
	credDir := env("CREDENTIALS_DIRECTORY")
	if file != "" {
		if credDir != "" && !strings.Contains(file, "/") {
			file = filepath.Join(credDir, file)
		}
		return readCredentials(file)
	}
	for _, pair := range [][2]string{
		{"PIOSNAP_S3_ACCESS_KEY", "PIOSNAP_S3_SECRET_KEY"},
		{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"},
	} {
		access, secret := env(pair[0]), env(pair[1])
		switch {
		case access != "" && secret != "":
			return Credentials{AccessKey: access, SecretKey: secret}, "", nil
		case access != "":
			return Credentials{}, "", fmt.Errorf("%s is set but %s is not; set both", pair[0], pair[1])
		case secret != "":
			return Credentials{}, "", fmt.Errorf("%s is set but %s is not; set both", pair[1], pair[0])
		}
	}
	if credDir != "" {
		p := filepath.Join(credDir, CredentialName)
		if data, err := os.ReadFile(p); err == nil && hasKeyLines(data) {
			return readCredentials(p)
		}
	}
	return Credentials{}, "", errors.New("no S3 credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, " +
		"set a credentials file, or pass a systemd credential named " + CredentialName)
}

// hasKeyLines reports whether a credential holds a line that is neither
// blank nor a comment.
func hasKeyLines(data []byte) bool {
	for line := range bytes.Lines(data) {
		if line = bytes.TrimSpace(line); len(line) > 0 && line[0] != '#' {
			return true
		}
	}
	return false
}

// readCredentials parses a credentials file and checks its permissions.
func readCredentials(path string) (Credentials, string, error) {
	f, err := os.Open(path)
	if err != nil {
		return Credentials{}, "", fmt.Errorf("read S3 credentials file: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return Credentials{}, "", fmt.Errorf("read S3 credentials file: %w", err)
	}
	var warning string
	if perm := fi.Mode().Perm(); perm&0o044 != 0 {
		warning = fmt.Sprintf("S3 credentials file %s is readable by group or others (mode %04o); restrict it with: chmod 600 %s", path, perm, path)
	}
	var data bytes.Buffer
	if _, err := data.ReadFrom(f); err != nil {
		return Credentials{}, "", fmt.Errorf("read S3 credentials file: %w", err)
	}
	c, err := parseCredentials(data.Bytes())
	if err != nil {
		return Credentials{}, "", fmt.Errorf("S3 credentials file %s: %w", path, err)
	}
	return c, warning, nil
}

func parseCredentials(data []byte) (Credentials, error) {
	var c Credentials
	var plain []string
	keyed := false
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		// Secrets may contain "=", so only known keys make a keyed line.
		key, value, _ := strings.Cut(line, "=")
		value = strings.Trim(strings.TrimSpace(value), `"'`)
		switch strings.ToLower(strings.TrimSpace(key)) {
		case "access_key", "aws_access_key_id":
			c.AccessKey, keyed = value, true
		case "secret_key", "aws_secret_access_key":
			c.SecretKey, keyed = value, true
		default:
			plain = append(plain, line)
		}
	}
	if err := sc.Err(); err != nil {
		return Credentials{}, err
	}
	switch {
	case keyed && len(plain) > 0:
		// Never echo the lines: they may hold a secret.
		return Credentials{}, fmt.Errorf("has %d lines besides access_key and secret_key; keep only access_key = … and secret_key = … lines", len(plain))
	case !keyed && len(plain) == 2:
		c = Credentials{AccessKey: plain[0], SecretKey: plain[1]}
	case !keyed:
		return Credentials{}, fmt.Errorf("has %d bare lines; want access_key = … and secret_key = … lines, or two lines (access key, then secret key)", len(plain))
	}
	if c.AccessKey == "" || c.SecretKey == "" {
		return Credentials{}, errors.New("lacks access_key or secret_key; set both")
	}
	return c, nil
}
