package main

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/piosnap/piosnap/store"
)

func TestPrintProblems(t *testing.T) {
	lost := func(n int) []store.Problem {
		var ps []store.Problem
		for i := range n {
			ps = append(ps, store.Problem{Object: fmt.Sprintf("blob %02d", i), Reason: "blob missing", Versions: []string{"v1 (worker1)"}})
		}
		return ps
	}
	pack := store.Problem{Object: "packs/ab/ab12", Reason: "pack content does not match its name", Versions: []string{"v1 (worker1)", "v2 (worker2)"}}
	tests := []struct {
		name string
		ps   []store.Problem
		want string
	}{
		{"one", []store.Problem{pack}, `  DAMAGED packs/ab/ab12: pack content does not match its name
    affects version v1 (worker1)
    affects version v2 (worker2)
`},
		{"few alike, each listed", lost(3), `  DAMAGED blob 00: blob missing
    affects version v1 (worker1)
  DAMAGED blob 01: blob missing
    affects version v1 (worker1)
  DAMAGED blob 02: blob missing
    affects version v1 (worker1)
`},
		{"many alike, counted", append(lost(5), pack), `  DAMAGED blob 00: blob missing
  DAMAGED blob 01: blob missing
  DAMAGED blob 02: blob missing
  DAMAGED 2 more objects alike (--json lists them)
    affects version v1 (worker1)
  DAMAGED packs/ab/ab12: pack content does not match its name
    affects version v1 (worker1)
    affects version v2 (worker2)
`},
		{"same reason, other versions: apart", append(lost(4), store.Problem{Object: "blob 99", Reason: "blob missing", Versions: []string{"v3 (leader1)"}}), `  DAMAGED blob 00: blob missing
  DAMAGED blob 01: blob missing
  DAMAGED blob 02: blob missing
  DAMAGED 1 more object alike (--json lists them)
    affects version v1 (worker1)
  DAMAGED blob 99: blob missing
    affects version v3 (leader1)
`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b bytes.Buffer
			printProblems(&b, tt.ps)
			if b.String() != tt.want {
				t.Errorf("got\n%s\nwant\n%s", b.String(), tt.want)
			}
		})
	}
}
