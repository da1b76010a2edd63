package retention

import (
	"strings"
	"testing"
	"time"
)

func TestParseDuration(t *testing.T) {
	tests := []struct {
		in   string
		want Duration
		str  string
	}{
		{"7d", Duration{Days: 7}, "7d"},
		{"1y6mo", Duration{Years: 1, Months: 6}, "1y6mo"},
		{"36h", Duration{Hours: 36}, "36h"},
		{"1y2mo3d4h", Duration{1, 2, 3, 4}, "1y2mo3d4h"},
		{"4h3d", Duration{Days: 3, Hours: 4}, "3d4h"},
		{"0d", Duration{}, "0d"},
		{"007d", Duration{Days: 7}, "7d"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseDuration(tt.in)
			if err != nil {
				t.Fatalf("ParseDuration(%q): %v", tt.in, err)
			}
			if got != tt.want {
				t.Errorf("ParseDuration(%q) = %+v, want %+v", tt.in, got, tt.want)
			}
			if s := got.String(); s != tt.str {
				t.Errorf("String() = %q, want %q", s, tt.str)
			}
			back, err := ParseDuration(got.String())
			if err != nil || back != got {
				t.Errorf("ParseDuration(String()) = %+v, %v; want %+v", back, err, got)
			}
		})
	}
}

func TestParseDurationErrors(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		{"", `retention duration is empty: write it as NyNmoNdNh, e.g. "7d" or "1y6mo"`},
		{"30m", `retention duration "30m": "30m" is ambiguous (months in restic, minutes in lock_wait and jitter): write "30mo" for 30 months`},
		{"1y6m", `retention duration "1y6m": "6m" is ambiguous (months in restic, minutes in lock_wait and jitter): write "6mo" for 6 months`},
		{"1w", `retention duration "1w": unit "w" unknown; use y, mo, d or h`},
		{"7", `retention duration "7": number 7 has no unit; use y, mo, d or h`},
		{"d", `retention duration "d": expected a number at "d"; write it as NyNmoNdNh, e.g. "7d"`},
		{"-1d", `retention duration "-1d": expected a number at "-1d"; write it as NyNmoNdNh, e.g. "7d"`},
		{"1d2d", `retention duration "1d2d": unit "d" given twice; write each unit once, e.g. "1y6mo"`},
		{"1dd", `retention duration "1dd": unit "dd" unknown; use y, mo, d or h`},
		{"1 d", `retention duration "1 d": unit " d" unknown; use y, mo, d or h`},
		{"99999999999999999999d", `retention duration "99999999999999999999d": number 99999999999999999999 is too large`},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			d, err := ParseDuration(tt.in)
			if err == nil {
				t.Fatalf("ParseDuration(%q) = %+v, want error", tt.in, d)
			}
			if err.Error() != tt.want {
				t.Errorf("ParseDuration(%q) error\n got %q\nwant %q", tt.in, err, tt.want)
			}
			if d != (Duration{}) {
				t.Errorf("ParseDuration(%q) returned %+v with an error, want zero", tt.in, d)
			}
		})
	}
}

func TestDurationBefore(t *testing.T) {
	ref := time.Date(2026, 3, 31, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		d    string
		want time.Time
	}{
		{"1mo", time.Date(2026, 3, 3, 12, 0, 0, 0, time.UTC)}, // 31 Feb normalises to 3 Mar
		{"7d", time.Date(2026, 3, 24, 12, 0, 0, 0, time.UTC)},
		{"36h", time.Date(2026, 3, 30, 0, 0, 0, 0, time.UTC)},
		{"1y1d", time.Date(2025, 3, 30, 12, 0, 0, 0, time.UTC)},
	}
	for _, tt := range tests {
		d, err := ParseDuration(tt.d)
		if err != nil {
			t.Fatal(err)
		}
		if got := d.before(ref); !got.Equal(tt.want) {
			t.Errorf("%s before %v = %v, want %v", tt.d, ref, got, tt.want)
		}
	}
}

func TestPolicyValidate(t *testing.T) {
	d7 := Duration{Days: 7}
	tests := []struct {
		name string
		p    Policy
		want string // "" means valid
	}{
		{"daily", Policy{Daily: 7}, ""},
		{"unlimited", Policy{Yearly: Unlimited}, ""},
		{"within only", Policy{Within: d7}, ""},
		{"within daily only", Policy{WithinDaily: d7}, ""},
		{"empty", Policy{}, "retention policy is empty: no version would be removed; set at least one keep_* rule, e.g. keep_daily = 7"},
		{"negative last", Policy{Last: -2}, "retention keep_last is -2: use 0 (off), a positive count, or -1 (unlimited)"},
		{"negative daily", Policy{Daily: -5, Weekly: 2}, "retention keep_daily is -5: use 0 (off), a positive count, or -1 (unlimited)"},
		{"two negatives", Policy{Hourly: -2, Yearly: -3}, "retention keep_hourly is -2: use 0 (off), a positive count, or -1 (unlimited)\nretention keep_yearly is -3: use 0 (off), a positive count, or -1 (unlimited)"},
		{"negative within", Policy{Daily: 1, WithinMonthly: Duration{Days: -1}}, "retention keep_within_monthly has a negative unit (-1d): durations count back and must not be negative"},
		{"negative keep_within", Policy{Within: Duration{Hours: -1}}, "retention keep_within has a negative unit (-1h): durations count back and must not be negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.p.Validate()
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				if tt.p.Empty() {
					t.Errorf("Empty() = true for a valid policy")
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate() = nil, want %q", tt.want)
			}
			if err.Error() != tt.want {
				t.Errorf("Validate() error\n got %q\nwant %q", err, tt.want)
			}
			if isEmpty := strings.HasPrefix(tt.want, "retention policy is empty"); isEmpty != tt.p.Empty() {
				t.Errorf("Empty() = %v, want %v", tt.p.Empty(), isEmpty)
			}
		})
	}
}
