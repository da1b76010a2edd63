package simulator

import (
	"bytes"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestLeaderListings(t *testing.T) {
	c := startCluster(t, Options{Workers: []string{"worker2", "worker1"}})
	tests := []struct {
		url  string
		code int
		want string
	}{
		{c.LeaderURL() + "/api/units", 200, `[{"pioreactor_unit":"leader1"},{"pioreactor_unit":"worker1"},{"pioreactor_unit":"worker2"}]`},
		{c.LeaderURL() + "/api/workers", 200, `[{"pioreactor_unit":"worker1","added_at":"2026-01-05T09:30:00.000Z","is_active":1,"model_name":"pioreactor_40ml","model_version":"1.5","ipv4_address":"127.0.0.1"},{"pioreactor_unit":"worker2","added_at":"2026-01-05T09:30:00.000Z","is_active":1,"model_name":"pioreactor_40ml","model_version":"1.5","ipv4_address":"127.0.0.1"}]`},
		{c.Unit("worker1").URL() + "/api/units", 404, `{"error":"Can't access /api/ endpoints when this unit isn't the leader. Did you mean /unit_api/?","status":404,"cause":"Can't access /api/ endpoints when this unit isn't the leader. Did you mean /unit_api/?"}`},
		{c.Unit("worker1").URL() + "/api/units/worker1/zipped_dot_pioreactor", 404, `{"error":"Can't access /api/ endpoints when this unit isn't the leader. Did you mean /unit_api/?","status":404,"cause":"Can't access /api/ endpoints when this unit isn't the leader. Did you mean /unit_api/?"}`},
	}
	for _, tt := range tests {
		r := get(t, tt.url)
		if r.status != tt.code || strings.TrimSpace(string(r.body)) != tt.want {
			t.Errorf("GET %s: %d %s\nwant %d %s", tt.url, r.status, r.body, tt.code, tt.want)
		}
	}
	if got := strings.Join(c.Units(), ","); got != "leader1,worker1,worker2" {
		t.Errorf("Units() = %s", got)
	}
	if len(c.Addresses()) != 3 || c.Addresses()["worker1"] != c.Unit("worker1").Addr() || c.Unit("nope") != nil {
		t.Errorf("Addresses() = %v", c.Addresses())
	}
}

func TestLeaderSingleExport(t *testing.T) {
	c := startCluster(t, Options{Workers: []string{"worker1"}})
	for _, unit := range []string{"worker1", "leader1"} {
		r := get(t, c.LeaderURL()+"/api/units/"+unit+"/zipped_dot_pioreactor")
		if r.status != 200 || r.header.Get("Content-Disposition") != "attachment; filename=dot_pioreactor.zip" ||
			r.header.Get("Content-Length") != strconv.Itoa(len(r.body)) {
			t.Fatalf("%s: %d %v", unit, r.status, r.header)
		}
		// Passed through unchanged: the unit's own layout, modes and metadata.
		if got, want := listing(t, r.body), listing(t, get(t, c.Unit(unit).URL()+"/unit_api/zipped_dot_pioreactor").body); got != want {
			t.Errorf("%s: leader pass-through differs from the unit's archive:\n%s\nvs\n%s", unit, got, want)
		}
	}
}

func TestLeaderBroadcastAggregate(t *testing.T) {
	c := startCluster(t, Options{Workers: []string{"worker2", "worker1"}})
	before := time.Now().Add(-2 * time.Second)
	r := get(t, c.LeaderURL()+"/api/units/$broadcast/zipped_dot_pioreactor")
	if r.status != 200 || r.header.Get("Content-Disposition") != "attachment; filename=cluster_dot_pioreactor.zip" ||
		r.header.Get("Content-Length") != strconv.Itoa(len(r.body)) {
		t.Fatalf("broadcast: %d %v", r.status, r.header)
	}
	files := readZip(t, r.body)
	var order []string
	perUnit := map[string]int{}
	for _, f := range files {
		unit, rest, ok := strings.Cut(f.Name, "/")
		if !ok || rest == "" {
			t.Fatalf("entry %q lacks the <host>/ prefix", f.Name)
		}
		if len(order) == 0 || order[len(order)-1] != unit {
			order = append(order, unit)
		}
		perUnit[unit]++
		wantMode := uint32(0o600)
		if strings.HasSuffix(f.Name, "/") {
			wantMode = 0o40775
			if f.ExternalAttrs&0x10 == 0 || f.CompressedSize64 == 0 {
				t.Errorf("directory %s: attrs %#x compressed %d; want the MS-DOS bit and a deflated empty body", f.Name, f.ExternalAttrs, f.CompressedSize64)
			}
		}
		if f.Method != 8 || f.ExternalAttrs>>16 != wantMode {
			t.Errorf("%s: method %d mode %o, want 8 and %o", f.Name, f.Method, f.ExternalAttrs>>16, wantMode)
		}
		if f.Modified.Before(localWall(before)) {
			t.Errorf("%s: mtime %v, want the aggregation time", f.Name, f.Modified)
		}
	}
	if strings.Join(order, ",") != "leader1,worker1,worker2" {
		t.Errorf("unit order %v", order)
	}
	for _, unit := range order {
		own := readZip(t, get(t, c.Unit(unit).URL()+"/unit_api/zipped_dot_pioreactor").body)
		if perUnit[unit] != len(own) {
			t.Errorf("%s: %d entries in aggregate, %d in its own archive", unit, perUnit[unit], len(own))
		}
		// File contents are byte-identical.
		for _, f := range own {
			if strings.HasSuffix(f.Name, "/") || f.Name == metadataName {
				continue
			}
			for _, g := range files {
				if g.Name == unit+"/"+f.Name && !bytes.Equal(member(t, f), member(t, g)) {
					t.Errorf("%s differs from the unit's copy", g.Name)
				}
			}
		}
	}
}

func TestLeaderExportFailures(t *testing.T) {
	c := startCluster(t, Options{Workers: []string{"worker1", "worker2"}})
	w1, w2 := c.Unit("worker1"), c.Unit("worker2")
	const noData = `{"error":"No data received from worker","status":502,"cause":"Worker returned an empty response body.","remediation":"Check worker connectivity and retry."}`
	tests := []struct {
		name   string
		setup  func() func()
		unit   string
		status int
		body   string   // exact body when set
		hosts  []string // host folders when the reply is an aggregate
	}{
		{"unknown unit", nil, "worker9", 400, `{"error":"Unknown Pioreactor unit: worker9","status":400,"cause":"Unknown Pioreactor unit: worker9"}`, nil},
		{"single offline", offline(t, w1), "worker1", 502, noData, nil},
		{"single sentinel", sentinel(t, w1), "worker1", 502, noData, nil},
		{"broadcast leaves out an offline unit", offline(t, w1), "$broadcast", 200, "", []string{"leader1", "worker2"}},
		{"broadcast leaves out a blocked unit", sentinel(t, w2), "$broadcast", 200, "", []string{"leader1", "worker1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.setup != nil {
				defer tt.setup()()
			}
			r := get(t, c.LeaderURL()+"/api/units/"+tt.unit+"/zipped_dot_pioreactor")
			if r.status != tt.status {
				t.Fatalf("status %d (%s), want %d", r.status, r.body, tt.status)
			}
			if tt.body != "" && strings.TrimSpace(string(r.body)) != tt.body {
				t.Errorf("body %s\nwant %s", r.body, tt.body)
			}
			if tt.hosts != nil {
				seen := map[string]bool{}
				var hosts []string
				for _, f := range readZip(t, r.body) {
					h, _, _ := strings.Cut(f.Name, "/")
					if !seen[h] {
						seen[h] = true
						hosts = append(hosts, h)
					}
				}
				if strings.Join(hosts, ",") != strings.Join(tt.hosts, ",") {
					t.Errorf("host folders %v, want %v", hosts, tt.hosts)
				}
			}
		})
	}
}

func TestLeaderExportTimeout(t *testing.T) {
	c := startCluster(t, Options{Workers: []string{"worker1", "worker2"}, ExportTimeout: 300 * time.Millisecond})
	w1, w2 := c.Unit("worker1"), c.Unit("worker2")
	w1.SetSlow(time.Hour)
	w2.SetExportDelay(time.Hour)
	const want = `{"error":"Timed out fetching .pioreactor archive","status":500,"cause":"Timed out fetching .pioreactor archive"}`
	for _, unit := range []string{"worker1", "worker2", "$broadcast"} {
		start := time.Now()
		r := get(t, c.LeaderURL()+"/api/units/"+unit+"/zipped_dot_pioreactor")
		if r.status != 500 || strings.TrimSpace(string(r.body)) != want {
			t.Errorf("%s: %d %s, want 500 %s", unit, r.status, r.body, want)
		}
		if d := time.Since(start); d > time.Minute {
			t.Errorf("%s: answered after %v, the cap is 300ms and the units take an hour", unit, d)
		}
	}
}

func offline(t *testing.T, u *Unit) func() func() {
	return func() func() {
		if err := u.SetOffline(true); err != nil {
			t.Fatal(err)
		}
		return func() {
			if err := u.SetOffline(false); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func sentinel(t *testing.T, u *Unit) func() func() {
	return func() func() {
		if err := u.SetSentinel(true); err != nil {
			t.Fatal(err)
		}
		return func() { u.SetSentinel(false) }
	}
}

func TestLeaderBroadcastEdgeCases(t *testing.T) {
	t.Run("leader only cluster passes through", func(t *testing.T) {
		c := startCluster(t, Options{})
		r := get(t, c.LeaderURL()+"/api/units/$broadcast/zipped_dot_pioreactor")
		files := readZip(t, r.body)
		if r.header.Get("Content-Disposition") != "attachment; filename=dot_pioreactor.zip" || files[len(files)-1].Name != metadataName {
			t.Errorf("single-result broadcast: %v, last entry %s", r.header, files[len(files)-1].Name)
		}
	})
	t.Run("every unit failing gives an empty zip", func(t *testing.T) {
		c := startCluster(t, Options{Workers: []string{"worker1"}})
		c.Unit("worker1").SetSentinel(true)
		c.Leader().SetSentinel(true)
		r := get(t, c.LeaderURL()+"/api/units/$broadcast/zipped_dot_pioreactor")
		if r.status != 200 || len(readZip(t, r.body)) != 0 {
			t.Errorf("status %d with %d bytes, want 200 and an empty zip", r.status, len(r.body))
		}
	})
}

func TestLeaderImport(t *testing.T) {
	c := startCluster(t, Options{Workers: []string{"worker1"}})
	w := c.Unit("worker1")
	good := makeZip(t, zipEntry{name: "config.ini", mode: 0o100644, body: "[a]\nB=1\n"}, metadataFor("worker1"))
	const failed = `{"error":"Importing system files failed on worker1. See system logs.","status":502,"cause":"Worker returned an error during import.","remediation":"Check worker logs and retry the import."}`
	tests := []struct {
		name     string
		setup    func() func()
		unit     string
		field    string
		filename string
		data     []byte
		status   int
		body     string
	}{
		{"broadcast", nil, "$broadcast", "archive", "a.zip", good, 400, `{"error":"Cannot import to $broadcast; choose a specific Pioreactor.","status":400,"cause":"Cannot import to $broadcast; choose a specific Pioreactor."}`},
		{"missing archive", nil, "worker1", "", "", nil, 400, `{"error":"No archive uploaded","status":400,"cause":"Missing 'archive' file in multipart form-data."}`},
		{"unsafe filename", nil, "worker1", "archive", "../..", good, 400, `{"error":"Invalid archive filename","status":400,"cause":"Invalid archive filename"}`},
		{"unknown unit", nil, "worker7", "archive", "a.zip", good, 400, `{"error":"Unknown Pioreactor unit: worker7","status":400,"cause":"Unknown Pioreactor unit: worker7"}`},
		{"hostname mismatch masked", nil, "worker1", "archive", "a.zip", makeZip(t, metadataFor("leader1")), 502, failed},
		{"sentinel masked", sentinel(t, w), "worker1", "archive", "a.zip", good, 502, failed},
		{"unit offline", offline(t, w), "worker1", "archive", "a.zip", good, 502, failed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.setup != nil {
				defer tt.setup()()
			}
			r := postArchive(t, c.LeaderURL()+"/api/units/"+tt.unit+"/import_zipped_dot_pioreactor", tt.field, tt.filename, tt.data)
			if r.status != tt.status || strings.TrimSpace(string(r.body)) != tt.body {
				t.Errorf("got %d %s\nwant %d %s", r.status, r.body, tt.status, tt.body)
			}
		})
	}
	t.Run("accepted passes through", func(t *testing.T) {
		r := postArchive(t, c.LeaderURL()+"/api/units/worker1/import_zipped_dot_pioreactor", "archive", "worker1 backup.zip", good)
		m := r.json(t)
		if r.status != 202 || m["status"] != "accepted" || m["unit"] != "worker1" || r.header.Get("Content-Type") != "application/json" {
			t.Fatalf("got %d %s", r.status, r.body)
		}
		id := m["task_id"].(string)
		waitFor(t, "succeeded on the worker", func() bool {
			return get(t, w.URL()+"/unit_api/task_results/"+id).status == 200
		})
		if p := get(t, c.LeaderURL()+"/unit_api/task_results/"+id); p.json(t)["status"] != "pending" {
			t.Errorf("the leader knows another unit's task: %s", p.body)
		}
	})
}

func TestBasicAuth(t *testing.T) {
	c := startCluster(t, Options{Workers: []string{"worker1"}, BasicAuth: &[2]string{"admin", "s3cret"}})
	tests := []struct {
		name       string
		user, pass string
		status     int
	}{
		{"no credentials", "", "", 401},
		{"wrong password", "admin", "nope", 401},
		{"valid", "admin", "s3cret", 200},
	}
	for _, path := range []string{"/unit_api/health", "/api/units", "/api/units/$broadcast/zipped_dot_pioreactor"} {
		for _, tt := range tests {
			req, _ := http.NewRequest(http.MethodGet, c.LeaderURL()+path, nil)
			if tt.user != "" {
				req.SetBasicAuth(tt.user, tt.pass)
			}
			r := do(t, req)
			if r.status != tt.status {
				t.Errorf("%s %s: %d, want %d", path, tt.name, r.status, tt.status)
			}
			if r.status == 401 && !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Basic ") {
				t.Errorf("%s: 401 without a Basic challenge", path)
			}
			if path == "/api/units/$broadcast/zipped_dot_pioreactor" && r.status == 200 && !strings.Contains(listing(t, r.body), "worker1/config.ini") {
				t.Error("the leader did not authenticate to the worker")
			}
		}
	}
}

func TestAggregateRejectsNonZip(t *testing.T) {
	_, err := aggregate([]fetchResult{{unit: "worker1", body: []byte("<html>oops</html>")}, {unit: "worker2", body: nil, err: http.ErrHandlerTimeout}}, time.Now())
	if err == nil || !strings.Contains(err.Error(), "worker1") {
		t.Errorf("err = %v, want one naming worker1", err)
	}
}
