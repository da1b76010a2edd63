package ingest

import (
	"archive/zip"
	"bytes"
	"context"
	"errors"
	"io/fs"
	"strings"
	"testing"
	"time"

	"github.com/piosnap/piosnap/archive"
	"github.com/piosnap/piosnap/store"
	"github.com/piosnap/piosnap/store/local"
)

type member struct {
	name string
	body string
	mode fs.FileMode
}

func makeZip(t *testing.T, ms []member) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, m := range ms {
		h := &zip.FileHeader{Name: m.name, Method: zip.Deflate, Modified: time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)}
		mode := m.mode
		if mode == 0 {
			mode = 0o644
			if strings.HasSuffix(m.name, "/") {
				mode = fs.ModeDir | 0o755
			}
		}
		h.SetMode(mode)
		w, err := zw.CreateHeader(h)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write([]byte(m.body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func meta(name string) string {
	return `{"metadata_version": 1, "name": "` + name + `", "leader_hostname": "leader1", "is_leader": false, "app_version": "26.7.2", "exported_at_utc": "2026-08-04T16:54:52.123Z"}`
}

func newWriter(t *testing.T) (*store.Writer, *store.Repository) {
	t.Helper()
	b, err := local.Create(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	repo, err := store.Init(context.Background(), b)
	if err != nil {
		t.Fatal(err)
	}
	w, err := store.NewWriter(context.Background(), repo)
	if err != nil {
		t.Fatal(err)
	}
	return w, repo
}

func TestAggregate(t *testing.T) {
	data := makeZip(t, []member{
		{name: "leader1/config.ini", body: "[a]\nB=1\n"},
		{name: "leader1/storage/", body: ""},
		{name: "leader1/storage/pioreactor.sqlite", body: strings.Repeat("row", 1000)},
		{name: "leader1/" + MetadataName, body: meta("leader1")},
		{name: "worker1/" + MetadataName, body: meta("stale")},
		{name: "worker1/config.ini", body: "[a]\n"},
		{name: "worker1/" + MetadataName, body: meta("worker1")},
	})
	w, repo := newWriter(t)
	ctx := context.Background()
	hosts, err := Read(ctx, bytes.NewReader(data), w, Options{Layout: Aggregate})
	if err != nil {
		t.Fatal(err)
	}
	if len(hosts) != 2 || hosts[0].Name != "leader1" || hosts[1].Name != "worker1" {
		t.Fatalf("hosts = %+v", hosts)
	}
	for _, h := range hosts {
		if h.Err != nil {
			t.Fatalf("%s rejected: %v", h.Name, h.Err)
		}
		if h.AppVersion != "26.7.2" {
			t.Errorf("%s app version %q", h.Name, h.AppVersion)
		}
		h.Pending.Commit(ctx, store.Version{Time: time.Now()})
	}
	vs, _ := repo.Versions(ctx)
	if len(vs) != 2 {
		t.Fatalf("%d versions", len(vs))
	}
	for _, v := range vs {
		last := v.Entries[len(v.Entries)-1]
		if last.Name != MetadataName {
			t.Errorf("%s: metadata is not the last entry", v.Host)
		}
		n := 0
		for _, e := range v.Entries {
			if e.Name == MetadataName {
				n++
			}
		}
		if n != 1 {
			t.Errorf("%s: %d metadata entries; the stale duplicate must be dropped (last wins)", v.Host, n)
		}
		var buf bytes.Buffer
		if err := repo.WriteZip(ctx, &buf, v); err != nil {
			t.Fatal(err)
		}
		zr, _ := zip.NewReader(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
		for _, f := range zr.File {
			if f.Name == MetadataName {
				rc, _ := f.Open()
				var b bytes.Buffer
				_, _ = b.ReadFrom(rc)
				if !strings.Contains(b.String(), `"name": "`+v.Host+`"`) {
					t.Errorf("%s: exported metadata %s", v.Host, b.String())
				}
			}
			if f.Name == "storage/" && f.Mode() != fs.ModeDir|0o755 {
				t.Errorf("dir mode %v", f.Mode())
			}
		}
	}
}

func TestSingleTakesHostFromMetadata(t *testing.T) {
	data := makeZip(t, []member{{name: "config.ini", body: "x"}, {name: MetadataName, body: meta("leader1")}})
	w, _ := newWriter(t)
	hosts, err := Read(context.Background(), bytes.NewReader(data), w, Options{Layout: Single})
	if err != nil || len(hosts) != 1 || hosts[0].Name != "leader1" || hosts[0].Err != nil || hosts[0].Pending.Host() != "leader1" {
		t.Fatalf("hosts = %+v, %v", hosts, err)
	}
}

func TestRejections(t *testing.T) {
	tests := []struct {
		name    string
		layout  Layout
		host    string
		members []member
		bad     string // host expected to be rejected
		want    string
	}{
		{"symlink", Aggregate, "", []member{{name: "w1/link", body: "/etc/passwd", mode: fs.ModeSymlink | 0o777}, {name: "w2/a", body: "ok"}}, "w1", "symbolic link"},
		{"traversal", Aggregate, "", []member{{name: "w1/a/../../b", body: "x"}, {name: "w2/a", body: "ok"}}, "w1", `entry "a/../../b"`},
		{"backslash traversal", Aggregate, "", []member{{name: `w1/a\..\..\b`, body: "x"}, {name: "w2/a", body: "ok"}}, "w1", "backslash path"},
		{"duplicate", Aggregate, "", []member{{name: "w1/a", body: "x"}, {name: "w1/a", body: "y"}, {name: "w2/a", body: "ok"}}, "w1", "duplicate"},
		{"metadata other host", Aggregate, "", []member{{name: "w1/" + MetadataName, body: meta("w9")}, {name: "w2/a", body: "ok"}}, "w1", `names unit "w9"`},
		{"metadata not json", Aggregate, "", []member{{name: "w1/" + MetadataName, body: "{"}, {name: "w2/a", body: "ok"}}, "w1", "not valid JSON"},
		{"single without metadata", Single, "", []member{{name: "a", body: "x"}}, "", "does not say which unit"},
		{"single wrong host", Single, "w1", []member{{name: "a", body: "x"}, {name: MetadataName, body: meta("w2")}}, "w1", `names unit "w2" but the archive is for w1: Pioreactor's import would refuse it; if w1's archive was pulled from its own address, that address probably reaches w2`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w, repo := newWriter(t)
			ctx := context.Background()
			hosts, err := Read(ctx, bytes.NewReader(makeZip(t, tt.members)), w, Options{Layout: tt.layout, Host: tt.host})
			if err != nil {
				t.Fatal(err)
			}
			for _, h := range hosts {
				if h.Name == tt.bad {
					var ie *Error
					if !errors.As(h.Err, &ie) || !strings.Contains(h.Err.Error(), tt.want) || !strings.Contains(h.Err.Error(), "host "+tt.bad) {
						t.Errorf("rejection = %v, want an *Error naming host %q and %q", h.Err, tt.bad, tt.want)
					}
					if h.Pending != nil {
						t.Error("rejected host still has a pending version")
					}
				} else if h.Err != nil {
					t.Errorf("%s rejected too: %v", h.Name, h.Err)
				} else {
					h.Pending.Commit(ctx, store.Version{Time: time.Now()})
				}
			}
			// The rejected host left nothing: every stored chunk is used.
			rep, _ := repo.Check(ctx, true)
			if !rep.OK() || rep.Unused != 0 {
				t.Errorf("repository after rejection: %+v", rep)
			}
		})
	}
}

func TestStreamErrorsAbortEverything(t *testing.T) {
	good := makeZip(t, []member{{name: "w1/a", body: strings.Repeat("abc", 100000)}, {name: "w2/a", body: "ok"}})
	tests := []struct {
		name string
		data []byte
		kind error
	}{
		{"html page", []byte("<!DOCTYPE html><html>502 Bad Gateway</html>"), archive.ErrFormat},
		{"truncated", good[:len(good)-30], archive.ErrFormat},
		{"outside host folder", makeZip(t, []member{{name: "loose.txt", body: "x"}}), archive.ErrUnsafe},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w, repo := newWriter(t)
			ctx := context.Background()
			_, err := Read(ctx, bytes.NewReader(tt.data), w, Options{Layout: Aggregate})
			if !errors.Is(err, tt.kind) {
				t.Errorf("err = %v, want %v", err, tt.kind)
			}
			chunks, _ := repo.Chunks(ctx)
			if len(chunks) != 0 {
				t.Errorf("%d chunks left behind", len(chunks))
			}
		})
	}
}

// Archives that must be refused as a whole host, with the reason: an empty
// entry name in one unit's archive, a cluster archive given as one unit's,
// and host folders that cannot be units of the cluster.
func TestRefusedShapes(t *testing.T) {
	units := []string{"leader1", "worker1"}
	cluster := []member{
		{name: "worker1/", body: ""},
		{name: "worker1/config.ini", body: "[a]\n"},
		{name: "worker1/" + MetadataName, body: meta("worker1")},
	}
	tests := []struct {
		name    string
		layout  Layout
		host    string
		members []member
		bad     string // host expected to be rejected
		want    string
	}{
		{"empty name in a unit archive", Single, "worker1", []member{{name: "config.ini", body: "x"}, {name: "", body: "lost"}, {name: MetadataName, body: meta("worker1")}}, "worker1", "empty name"},
		{"cluster archive as a unit's", Single, "worker1", cluster, "worker1", `cluster archive, not one unit's: its folders worker1/`},
		{"cluster archive with a stray file", Single, "worker1", append([]member{{name: "notes.txt", body: "x"}}, cluster...), "worker1", "cluster archive"},
		{"cluster archive with a folder that is no host", Single, "worker1", []member{{name: "bad host!/config.ini", body: "x"}, {name: "bad host!/" + MetadataName, body: meta("")}}, "worker1", `folders bad host!/`},
		{"folder not a unit name", Aggregate, "", []member{{name: "bad host!/a", body: "x"}, {name: "worker1/a", body: "ok"}}, "bad host!", "not a valid Pioreactor unit name"},
		{"folder not in the cluster", Aggregate, "", []member{{name: "worker9/a", body: "x"}, {name: "worker1/a", body: "ok"}}, "worker9", "not a unit of the cluster (the leader lists leader1, worker1)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w, repo := newWriter(t)
			ctx := context.Background()
			hosts, err := Read(ctx, bytes.NewReader(makeZip(t, tt.members)), w, Options{Layout: tt.layout, Host: tt.host, Units: units})
			if err != nil {
				t.Fatal(err)
			}
			found := false
			for _, h := range hosts {
				if h.Name != tt.bad {
					if h.Err != nil {
						t.Errorf("%s rejected too: %v", h.Name, h.Err)
					} else {
						h.Pending.Commit(ctx, store.Version{Time: time.Now()})
					}
					continue
				}
				found = true
				if h.Err == nil || !strings.Contains(h.Err.Error(), tt.want) {
					t.Errorf("%s: rejection = %v, want one saying %q", h.Name, h.Err, tt.want)
				}
				if h.Pending != nil {
					t.Error("rejected host still has a pending version")
				}
			}
			if !found {
				t.Errorf("no host %q reported; hosts: %+v", tt.bad, hosts)
			}
			vs, _ := repo.Versions(ctx)
			for _, v := range vs {
				if v.Host == tt.bad {
					t.Errorf("a version of the refused host %q was stored", tt.bad)
				}
			}
			if rep, _ := repo.Check(ctx, true); !rep.OK() || rep.Unused != 0 {
				t.Errorf("repository after rejection: %+v", rep)
			}
		})
	}
}

// A backslash is an ordinary character of a Linux file name: the unit's
// file is stored under its own name and comes back in the rebuilt ZIP.
func TestBackslashNameIsStored(t *testing.T) {
	name := `storage/calibrations/od\90.yaml`
	data := makeZip(t, []member{{name: "config.ini", body: "x"}, {name: name, body: "cal"}, {name: MetadataName, body: meta("worker1")}})
	w, repo := newWriter(t)
	ctx := context.Background()
	hosts, err := Read(ctx, bytes.NewReader(data), w, Options{Layout: Single, Host: "worker1"})
	if err != nil || len(hosts) != 1 || hosts[0].Err != nil {
		t.Fatalf("Read = %+v, %v", hosts, err)
	}
	res := hosts[0].Pending.Commit(ctx, store.Version{Time: time.Now()})
	if res[0].Err != nil {
		t.Fatal(res[0].Err)
	}
	var buf bytes.Buffer
	if err := repo.WriteZip(ctx, &buf, res[0].Version); err != nil {
		t.Fatal(err)
	}
	zr, err := zip.NewReader(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range zr.File {
		if f.Name == name {
			return
		}
	}
	t.Errorf("rebuilt ZIP lacks %q", name)
}
