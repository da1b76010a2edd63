package pioreactor

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

func TestExportLayouts(t *testing.T) {
	tests := []struct {
		name        string
		cluster     bool
		disposition string
		chunked     bool
		wantLayout  Layout
		wantName    string
	}{
		{"aggregate", true, "attachment; filename=cluster_dot_pioreactor.zip", false, LayoutAggregate, "cluster_dot_pioreactor.zip"},
		{"single-unit cluster", true, "attachment; filename=dot_pioreactor.zip", false, LayoutSingle, "dot_pioreactor.zip"},
		{"quoted filename", true, `attachment; filename="cluster_dot_pioreactor.zip"`, false, LayoutAggregate, "cluster_dot_pioreactor.zip"},
		{"no disposition", true, "", true, LayoutUnknown, ""},
		{"unit", false, "attachment; filename=worker3_dot_pioreactor.zip", false, LayoutSingle, "worker3_dot_pioreactor.zip"},
		{"unit without disposition", false, "", false, LayoutSingle, ""},
	}
	const payload = "PK\x05\x06" + "\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var gotPath string
			h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				gotPath = r.URL.RawPath
				if gotPath == "" {
					gotPath = r.URL.Path
				}
				if tt.disposition != "" {
					w.Header().Set("Content-Disposition", tt.disposition)
				}
				w.Header().Set("Content-Type", "application/zip")
				if tt.chunked {
					w.WriteHeader(http.StatusOK)
					w.(http.Flusher).Flush()
				}
				io.WriteString(w, payload)
			})
			addr := serve(t, h)
			c := newClient(t, addr, map[string]string{"worker3": addr})
			var ex *Export
			var err error
			wantPath := "/unit_api/zipped_dot_pioreactor"
			if tt.cluster {
				ex, err = c.ExportCluster(testContext(t))
				wantPath = "/api/units/$broadcast/zipped_dot_pioreactor"
			} else {
				ex, err = c.ExportUnit(testContext(t), "worker3")
			}
			if err != nil {
				t.Fatal(err)
			}
			defer ex.Body.Close()
			if gotPath != wantPath {
				t.Errorf("server saw path %q, want %q", gotPath, wantPath)
			}
			if ex.Layout != tt.wantLayout || ex.Filename != tt.wantName {
				t.Errorf("layout %v filename %q, want %v %q", ex.Layout, ex.Filename, tt.wantLayout, tt.wantName)
			}
			wantSize := int64(len(payload))
			if tt.chunked {
				wantSize = -1
			}
			if ex.Size != wantSize {
				t.Errorf("Size = %d, want %d", ex.Size, wantSize)
			}
			b, err := io.ReadAll(ex.Body)
			if err != nil || string(b) != payload {
				t.Errorf("body %q, %v", b, err)
			}
		})
	}
}

func TestLayoutString(t *testing.T) {
	for l, want := range map[Layout]string{LayoutUnknown: "unknown", LayoutSingle: "single", LayoutAggregate: "aggregate", Layout(9): "unknown"} {
		if got := l.String(); got != want {
			t.Errorf("%d.String() = %q, want %q", int(l), got, want)
		}
	}
}

func TestExportReader(t *testing.T) {
	body := io.NopCloser(strings.NewReader("abcdefgh"))
	ex := &Export{Body: body}
	if r := ex.Reader(nil); r != io.Reader(body) {
		t.Errorf("Reader(nil) = %T, want the body itself", r)
	}
	var got int64
	b, err := io.ReadAll(ex.Reader(func(n int64) { got += n }))
	if err != nil || string(b) != "abcdefgh" || got != 8 {
		t.Errorf("read %q, %v; progress saw %d bytes, want 8", b, err, got)
	}
}
