package store

import (
	"strings"
	"testing"
)

func TestParseShardedName(t *testing.T) {
	id := HashChunk([]byte("piosnap"))
	h := id.String()
	tests := []struct {
		name string
		ok   bool
	}{
		{chunkName(id), true},
		{"chunks/" + h, false},               // no shard folder
		{"chunks/zz/" + h, false},            // wrong shard folder
		{"chunks/" + h[:3] + "/" + h, false}, // shard folder too long
		{"chunks/" + h[:2] + "/" + h[:63], false},
		{"chunks/" + h[:2] + "/" + strings.ToUpper(h), false},
		{packName(id), false}, // another prefix
	}
	for _, tt := range tests {
		got, ok := parseChunkName(tt.name)
		if ok != tt.ok || ok && got != id {
			t.Errorf("parseChunkName(%q) = %v, %v; want ok %v", tt.name, got, ok, tt.ok)
		}
	}
	if got, ok := parsePackName(packName(id)); !ok || got != id {
		t.Errorf("parsePackName(packName(id)) = %v, %v", got, ok)
	}
}
