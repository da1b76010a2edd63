package restore_test

import (
	"context"
	"testing"

	"github.com/piosnap/piosnap/archive/pioreactor/restore"
)

// TestEncoding checks which archive each Encoding sends: EncodingAuto
// compresses an archive above DeflateAbove and streams a smaller one.
func TestEncoding(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name         string
		enc          restore.Encoding
		deflateAbove int64
		safety       bool // take the safety snapshot, which the compression overlaps
		wantDeflate  bool
	}{
		{"auto, small archive", restore.EncodingAuto, 0, false, false},
		{"auto, over the threshold", restore.EncodingAuto, 1 << 10, false, true},
		{"auto, over the threshold, with a safety snapshot", restore.EncodingAuto, 1 << 10, true, true},
		{"stored over the threshold", restore.EncodingStored, 1 << 10, false, false},
		{"deflate", restore.EncodingDeflate, 0, false, true},
		{"deflate, with a safety snapshot", restore.EncodingDeflate, 0, true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := newRig(t)
			ctx := context.Background()
			stored, err := restore.NewSource(ctx, r.st.Repo, r.v, nil, false)
			if err != nil {
				t.Fatal(err)
			}
			stored.Close()
			var evs events
			o := r.options("worker1", &evs)
			o.Encoding, o.DeflateAbove = tt.enc, tt.deflateAbove
			o.NoSafety, o.NoWait = !tt.safety, true
			p, err := restore.Prepare(ctx, o)
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			if err := p.Run(ctx); err != nil {
				t.Fatal(err)
			}
			up := evs.find(restore.KindUploaded)
			if up == nil {
				t.Fatal("no upload reported")
			}
			if deflated := up.Size < stored.Size(); deflated != tt.wantDeflate {
				t.Errorf("uploaded %d bytes, the STORED archive is %d; want DEFLATE %v", up.Size, stored.Size(), tt.wantDeflate)
			}
			comp := evs.find(restore.KindCompressing)
			if want := tt.wantDeflate && tt.enc == restore.EncodingAuto; (comp != nil) != want {
				t.Errorf("compressing reported: %+v, want %v", comp, want)
			} else if comp != nil && comp.Size != stored.Size() {
				t.Errorf("compressing reported %d bytes, want the STORED size %d", comp.Size, stored.Size())
			}
			if (evs.find(restore.KindStreaming) != nil) == tt.wantDeflate {
				t.Errorf("streaming reported for a DEFLATE archive, or not for a STORED one")
			}
			if tt.wantDeflate && evs.find(restore.KindRebuilt) == nil {
				t.Error("no rebuilt event for a DEFLATE archive")
			}
			if tt.safety && tt.wantDeflate && evs.index(restore.KindRebuilt) < evs.index(restore.KindSafetyTaken) {
				t.Error("the compressed archive was awaited before the safety snapshot: nothing overlapped")
			}
		})
	}
}
