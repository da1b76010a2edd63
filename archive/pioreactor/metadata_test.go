package pioreactor

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite testdata golden files from the current output")

// The golden files were first written by Python's json.dumps on the same
// values, so they pin down Pioreactor's exact formatting.
func TestMetadataMarshalGolden(t *testing.T) {
	tests := []struct {
		name string
		m    Metadata
	}{
		{"worker", Metadata{1, "worker1", "leader1", false, "26.7.2", "2026-08-04T16:54:52.123Z"}},
		{"leader", Metadata{1, "leader1", "leader1", true, "26.7.2.dev0", "2026-01-31T23:59:59.999Z"}},
		{"unknown_leader", Metadata{1, "worker9", "unknown", false, "26.6.0rc1", "2026-06-01T00:00:00.000Z"}},
		{"escapes", Metadata{12, "we\"ird\\name\té/\x7f\x01\n\r\b\f", "l\u2028\U0001F600<>&", false, "", "\x00"}},
		{"zero", Metadata{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			golden := filepath.Join("testdata", "metadata", tt.name+".golden")
			got := tt.m.Marshal()
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("Marshal\n got: %s\nwant: %s", got, want)
			}
			back, err := ParseMetadata(got)
			if err != nil || back != tt.m {
				t.Fatalf("round trip: %+v, %v", back, err)
			}
		})
	}
}

func TestParseMetadata(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    Metadata
		wantErr string
	}{
		{"spec example", `{"metadata_version": 1, "name": "worker1", "leader_hostname": "leader1", "is_leader": false, "app_version": "26.7.2", "exported_at_utc": "2026-08-04T16:54:52.123Z"}`,
			Metadata{1, "worker1", "leader1", false, "26.7.2", "2026-08-04T16:54:52.123Z"}, ""},
		{"compact, extra keys, whitespace", " {\"name\":\"w\",\"future\":[1]}\n", Metadata{Name: "w"}, ""},
		{"empty object", `{}`, Metadata{}, ""},
		{"array", `[]`, Metadata{}, "not a JSON object"},
		{"null", `null`, Metadata{}, "not a JSON object"},
		{"empty", ``, Metadata{}, "not a JSON object"},
		{"bad utf8", "{\"name\": \"\xff\"}", Metadata{}, "not valid UTF-8"},
		{"wrong type", `{"metadata_version": "1"}`, Metadata{}, "metadata_version"},
		{"truncated", `{"name": "w`, Metadata{}, "parse pioreactor_export_metadata.json"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseMetadata([]byte(tt.in))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want it to contain %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("got %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
}

func TestMetadataExportedAt(t *testing.T) {
	tests := []struct {
		in      string
		want    time.Time
		wantErr string
	}{
		{"2026-08-04T16:54:52.123Z", time.Date(2026, 8, 4, 16, 54, 52, 123e6, time.UTC), ""},
		{"2026-08-04T18:54:52.123+02:00", time.Date(2026, 8, 4, 16, 54, 52, 123e6, time.UTC), ""},
		{"", time.Time{}, "has no exported_at_utc"},
		{"yesterday", time.Time{}, `exported_at_utc "yesterday" is not an ISO 8601 UTC time`},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := Metadata{Name: "worker1", ExportedAtUTC: tt.in}.ExportedAt()
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want it to contain %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || !got.Equal(tt.want) || got.Location() != time.UTC {
				t.Fatalf("got %v, %v; want %v", got, err, tt.want)
			}
		})
	}
}
