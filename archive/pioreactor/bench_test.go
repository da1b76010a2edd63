package pioreactor

import (
	"io"
	"net/http"
	"strconv"
	"testing"
)

// BenchmarkImport streams a 64 MiB generated archive as a multipart upload
// to a loopback server that parses the form and discards the part.
func BenchmarkImport(b *testing.B) {
	const size = 64 << 20
	addr := serve(b, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mr, err := r.MultipartReader()
		if err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		p, err := mr.NextPart()
		if err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		if n, _ := io.Copy(io.Discard, p); n != size {
			http.Error(w, "short", 400)
			return
		}
		reply(w, 202, `{"unit":"worker2","task_id":"t","result_url_path":"/unit_api/task_results/t","status":"accepted"}`)
	}))
	c, err := New(Config{Leader: addr, Addresses: map[string]string{"worker2": addr}})
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(size)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.ImportDirect(b.Context(), "worker2", &patternReader{n: size}, size, nil); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkExportUnit downloads a 64 MiB export from a loopback server.
func BenchmarkExportUnit(b *testing.B) {
	const size = 64 << 20
	addr := serve(b, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Disposition", "attachment; filename=worker2_dot_pioreactor.zip")
		w.Header().Set("Content-Length", strconv.Itoa(size))
		io.Copy(w, &patternReader{n: size})
	}))
	c, err := New(Config{Leader: addr, Addresses: map[string]string{"worker2": addr}})
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(size)
	b.ReportAllocs()
	for b.Loop() {
		ex, err := c.ExportUnit(b.Context(), "worker2")
		if err != nil {
			b.Fatal(err)
		}
		n, err := io.Copy(io.Discard, ex.Body)
		ex.Body.Close()
		if err != nil || n != size {
			b.Fatalf("read %d, %v", n, err)
		}
	}
}
