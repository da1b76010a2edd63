package dir

import "testing"

func TestMatch(t *testing.T) {
	for _, tc := range []struct {
		pattern, name string
		want          bool
	}{
		{"data/.minio.sys/tmp", "data/.minio.sys/tmp", true},
		{"data/.minio.sys/tmp", "data/.minio.sys/tmp/part.1", true},
		{"data/.minio.sys/tmp", "data/.minio.sys/format.json", false},
		{"logs/*.log.*", "logs/pydio.log.1", true},
		{"logs/*.log.*", "logs/pydio.log", false},
		{"**/*.db", "configs-versions.db", true},
		{"**/*.db", "services/pydio.grpc.docstore/docstore.db", true},
		{"**/*.db", "services/docstore.dbx", false},
		{"services/**/root.bolt", "services/a/b/store/root.bolt", true},
		{"services/**/root.bolt", "services/root.bolt", true},
		{"**", "anything/at/all", true},
		{"*.tmp", "a/b.tmp", false},
		{"a/b", "a", false},
		{"data/.minio.sys/tmp/", "data/.minio.sys/tmp/part.1", true},
		{"./logs", "logs/pydio.log", true},
	} {
		if got := Match(tc.pattern, tc.name); got != tc.want {
			t.Errorf("Match(%q, %q) = %v, want %v", tc.pattern, tc.name, got, tc.want)
		}
	}
}
