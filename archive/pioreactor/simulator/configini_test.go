package simulator

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestConfigRewrite(t *testing.T) {
	tests := []struct {
		name    string
		in      string // "" means no config.ini at all
		want    string
		wantErr string
	}{
		{
			name: "comments dropped, names lower-cased, key=value",
			in:   "# top comment\n[PWM]\n; channel map\n1 = stirring\n\n[leds]\nA=IR\nB : \n[storage]\nDatabase = /x.sqlite\ntemporary_cache=/tmp/old.sqlite\n",
			want: "[PWM]\n1=stirring\n\n[leds]\na=IR\nb=\n\n[storage]\ndatabase=/x.sqlite\ntemporary_cache=" + temporaryCacheOption + "\n\n",
		},
		{
			name: "storage section added when missing",
			in:   "[ui]\nport=80\n",
			want: "[ui]\nport=80\n\n[storage]\ntemporary_cache=" + temporaryCacheOption + "\n\n",
		},
		{
			name: "continuation lines become tab-indented",
			in:   "[x]\nlist = a\n    b\n\n    c\nnext=1\n",
			want: "[x]\nlist=a\n\tb\n\t\n\tc\nnext=1\n\n[storage]\ntemporary_cache=" + temporaryCacheOption + "\n\n",
		},
		{
			name: "first delimiter splits, inline comment kept",
			in:   "[x]\nurl: http://h:80/a=b ; not a comment\n",
			want: "[x]\nurl=http://h:80/a=b ; not a comment\n\n[storage]\ntemporary_cache=" + temporaryCacheOption + "\n\n",
		},
		{name: "missing file", in: "", want: "[storage]\ntemporary_cache=" + temporaryCacheOption + "\n\n"},
		{name: "duplicate after lower-casing", in: "[leds]\nA=IR\na=IR\n", wantErr: "DuplicateOptionError"},
		{name: "duplicate section", in: "[a]\n[a]\n", wantErr: "DuplicateSectionError"},
		{name: "option before any section", in: "x=1\n", wantErr: "MissingSectionHeaderError"},
		{name: "line without delimiter", in: "[a]\njunk\n", wantErr: "ParsingError"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "config.ini")
			if tt.in != "" {
				os.WriteFile(p, []byte(tt.in), 0o644)
			}
			err := rewriteConfig(p)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one naming %s", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got, _ := os.ReadFile(p)
			if string(got) != tt.want {
				t.Errorf("rewrite:\n%q\nwant\n%q", got, tt.want)
			}
		})
	}
}

func TestConfigRewriteUnreadable(t *testing.T) {
	dir := t.TempDir()
	// A directory named config.ini cannot be read as a file.
	p := filepath.Join(dir, "config.ini")
	os.Mkdir(p, 0o755)
	if err := rewriteConfig(p); err == nil || !strings.Contains(err.Error(), "config.ini") {
		t.Errorf("err = %v, want a read error naming config.ini", err)
	}
}
