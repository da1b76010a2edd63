package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestExampleParses(t *testing.T) {
	c, err := Parse(Example)
	if err != nil {
		t.Fatalf("the shipped example must parse: %v", err)
	}
	if c.Schedule != "30 1 * * *" || c.Pioreactor.Pull != "broadcast" || len(c.Stores) != 1 {
		t.Errorf("example decoded wrong: %+v", c)
	}
	p, err := c.Stores[0].Retention.Policy()
	if err != nil || p.Daily != 7 || p.Weekly != 4 || p.Monthly != 12 {
		t.Errorf("retention = %+v, %v", p, err)
	}
	if c.Location().String() != "UTC" {
		t.Errorf("zone = %v", c.Location())
	}
}

func TestDefaults(t *testing.T) {
	c, err := Parse(`[[store]]
path = "/tmp/x"`)
	if err != nil {
		t.Fatal(err)
	}
	if c.Schedule != DefaultSchedule || c.Pioreactor.Leader != "pioreactor.local" || c.Stores[0].Name != "local" ||
		c.Pioreactor.Timeout.Duration != time.Minute || !c.Stores[0].Retention.ForgetAfterBackup() {
		t.Errorf("defaults not applied: %+v", c)
	}
	if c.Web.Listen != "" || c.Web.PasswordFile != "/var/lib/piosnap/web.password" || c.Web.SessionTimeout.Duration != 12*time.Hour || c.Web.PublicStatus {
		t.Errorf("web defaults not applied: %+v", c.Web)
	}
}

// lock_wait = "0s" means "do not wait"; only a missing lock_wait takes the
// default.
func TestLockWait(t *testing.T) {
	tests := []struct {
		line string
		want time.Duration
	}{
		{"", DefaultLockWait},
		{`lock_wait = "0s"`, 0},
		{`lock_wait = "1ms"`, time.Millisecond},
		{`lock_wait = "1500ms"`, 1500 * time.Millisecond},
	}
	for _, tt := range tests {
		c, err := Parse(tt.line + "\n[[store]]\npath = \"/tmp/x\"\n")
		if err != nil {
			t.Fatalf("%q: %v", tt.line, err)
		}
		if c.LockWait.Duration != tt.want {
			t.Errorf("%q: lock wait %v, want %v", tt.line, c.LockWait.Duration, tt.want)
		}
	}
}

func TestErrorsNameTheField(t *testing.T) {
	const store = "\n[[store]]\npath = \"/r\"\n"
	tests := []struct {
		name, text, want string
	}{
		{"unknown top key", "shedule = \"@daily\"" + store, "unknown key shedule"},
		{"unknown nested key", store + "[store.retention]\nkeep_dayly = 3\n", "unknown key store.retention.keep_dayly"},
		{"bad zone", "zone = \"Mars/Olympus\"" + store, `zone = "Mars/Olympus" is not an IANA time zone`},
		{"bad schedule", "schedule = \"every night\"" + store, `schedule "every night"`},
		{"every refused", "schedule = \"@every 5m\"" + store, "@every"},
		{"bad pull", "[pioreactor]\npull = \"all\"" + store, `pioreactor.pull = "all": allowed values`},
		{"bad duration", "jitter = \"5 minutes\"" + store, `"5 minutes" is not a duration`},
		{"no store", "", "no [[store]] configured"},
		{"local without path", "[[store]]\nname = \"a\"", `store "a": path is required`},
		{"s3 without bucket", "[[store]]\ntype = \"s3\"\nendpoint = \"m:9000\"", "endpoint and bucket are required"},
		{"s3 endpoint scheme", "[[store]]\ntype = \"s3\"\nendpoint = \"http://m:9000\"\nbucket = \"b\"", "without a scheme"},
		{"bad type", "[[store]]\ntype = \"ftp\"\npath = \"/x\"", `type = "ftp"`},
		{"duplicate names", store + store, "names must be unique"},
		{"bad store name", "[[store]]\nname = \"Off Site\"\npath = \"/x\"", `store[0].name = "Off Site"`},
		{"negative keep", store + "[store.retention]\nkeep_daily = -2\n", "keep_daily"},
		{"bad within", store + "[store.retention]\nkeep_within = \"1w\"\n", "retention.keep_within"},
		{"negative verify_days", "[[store]]\npath = \"/r\"\nverify_days = -1\n", "verify_days = -1: use 1 to 3650"},
		{"verify_days too large", "[[store]]\npath = \"/r\"\nverify_days = 5000\n", "verify_days = 5000"},
		{"metrics not loopback", "[metrics]\nlisten = \"0.0.0.0:9472\"" + store, "set allow_remote = true"},
		{"web listen without port", "[web]\nlisten = \"0.0.0.0\"" + store, "web.listen"},
		{"bad log format", "[log]\nformat = \"xml\"" + store, `log.format = "xml"`},
		{"bad webhook", "[notify]\nwebhook_url = \"ftp://x\"" + store, "notify.webhook_url"},
		{"password without user", "[pioreactor]\npassword_file = \"/p\"" + store, "pioreactor.user is empty"},
		{"bad address", "[pioreactor.addresses]\nworker1 = \"a b\"" + store, "pioreactor.addresses.worker1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse(tt.text)
			if err == nil {
				t.Fatalf("Parse accepted bad config; want error containing %q", tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not contain %q", err, tt.want)
			}
		})
	}
}

func TestMetricsAllowRemote(t *testing.T) {
	const store = "\n[[store]]\npath = \"/r\"\n"
	tests := []struct {
		text     string
		loopback bool
	}{
		{"[metrics]\nlisten = \"192.168.1.10:9472\"\nallow_remote = true" + store, false},
		{"[metrics]\nlisten = \"[::1]:9472\"" + store, true},
		{"[metrics]\nlisten = \"localhost:9472\"\nallow_remote = true" + store, true},
	}
	for _, tt := range tests {
		c, err := Parse(tt.text)
		if err != nil {
			t.Fatalf("%q: %v", tt.text, err)
		}
		if got := c.Metrics.Loopback(); got != tt.loopback {
			t.Errorf("%q: Loopback() = %v, want %v", tt.text, got, tt.loopback)
		}
	}
}

func TestLoadMissingFileSaysWhatToDo(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "nope.toml"))
	if err == nil || !strings.Contains(err.Error(), "piosnap config example") {
		t.Errorf("err = %v", err)
	}
}

func TestLoad(t *testing.T) {
	path := filepath.Join(t.TempDir(), "p.toml")
	if err := os.WriteFile(path, []byte("zone = \"Europe/Berlin\"\n[[store]]\npath = \"/r\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if c.ZoneName() != "Europe/Berlin" {
		t.Errorf("zone = %s", c.ZoneName())
	}
	if _, err := c.Store("offsite"); err == nil || !strings.Contains(err.Error(), "configured stores are local") {
		t.Errorf("Store(offsite) err = %v", err)
	}
}

func TestVerifyDays(t *testing.T) {
	for _, tc := range []struct {
		line string
		want int
	}{
		{"", DefaultVerifyDays},
		{"verify_days = 0", 0},
		{"verify_days = 7", 7},
	} {
		c, err := Parse("[[store]]\npath = \"/r\"\n" + tc.line + "\n")
		if err != nil {
			t.Fatalf("%q: %v", tc.line, err)
		}
		if got := c.Stores[0].VerifyDaysOrDefault(); got != tc.want {
			t.Errorf("%q: verify_days %d, want %d", tc.line, got, tc.want)
		}
	}
}
