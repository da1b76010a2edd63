package dir

import (
	"archive/tar"
	"context"
	"fmt"
	"io"
	"io/fs"
	"strings"

	"github.com/piosnap/piosnap/store"
)

// WriteTar writes a directory version as a tar archive (PAX format): every
// entry with its mode, numeric owner and group, modification time, symbolic
// links as links and empty folders, the database dump included under its
// entry name. `tar -xpf` as root restores it with owners.
func WriteTar(ctx context.Context, w io.Writer, src EntryOpener, v *store.Version) error {
	src = forVersion(src, v)
	tw := tar.NewWriter(w)
	for i := range v.Entries {
		e := &v.Entries[i]
		if err := ctx.Err(); err != nil {
			return err
		}
		h := &tar.Header{
			Name:    e.Name,
			Mode:    int64(e.Mode.Perm()),
			ModTime: e.Modified,
			Format:  tar.FormatPAX,
		}
		if e.Mode&fs.ModeSetuid != 0 {
			h.Mode |= 0o4000
		}
		if e.Mode&fs.ModeSetgid != 0 {
			h.Mode |= 0o2000
		}
		if e.Mode&fs.ModeSticky != 0 {
			h.Mode |= 0o1000
		}
		if e.Owner != nil {
			h.Uid, h.Gid = e.Owner.UID, e.Owner.GID
		}
		switch {
		case e.IsDir():
			h.Typeflag = tar.TypeDir
			if !strings.HasSuffix(h.Name, "/") {
				h.Name += "/"
			}
		case e.Mode&fs.ModeSymlink != 0:
			h.Typeflag, h.Linkname = tar.TypeSymlink, e.Link
		default:
			h.Typeflag, h.Size = tar.TypeReg, e.Size
		}
		if err := tw.WriteHeader(h); err != nil {
			return fmt.Errorf("write %q: %w", e.Name, err)
		}
		if h.Typeflag == tar.TypeReg {
			if _, err := io.Copy(tw, src.OpenEntry(ctx, e)); err != nil {
				return fmt.Errorf("rebuild version %s of %s: %w", v.ShortID(), v.Host, err)
			}
		}
	}
	return tw.Close()
}
