package archive

import (
	"errors"
	"io/fs"
	"strings"
	"testing"
)

func TestCheckName(t *testing.T) {
	tests := []struct {
		name   string
		reason string // "" if safe
	}{
		{"config.ini", ""},
		{"storage/pioreactor.sqlite", ""},
		{"storage/", ""},
		{".image_metadata", ""},
		{"leader1/storage/calibrations/od90/c1.yaml", ""},
		{"ui/caf\u00e9.txt", ""},
		{"a..b/..c", ""},
		{"", "empty name"},
		{"/etc/passwd", "absolute path"},
		{"/", "absolute path"},
		{"../x", `path traversal ("..")`},
		{"a/../b", `path traversal ("..")`},
		{"a/..", `path traversal ("..")`},
		{"a/../", `path traversal ("..")`},
		{`..\x`, "backslash path that starts at the root or climbs out"},
		{`\x`, "backslash path that starts at the root"},
		{`a\..\..\b`, "backslash path that starts at the root or climbs out"},
		{`storage/a\b.yaml`, ""}, // an ordinary Linux file name
		{`a\.b`, ""},
		{"C:/x", `drive letter ("C:")`},
		{"c:x", `drive letter ("c:")`},
		{"a//b", `empty path element ("//")`},
		{"a/b//", `empty path element ("//")`},
		{"./a", `"." path element`},
		{"a/./b", `"." path element`},
		{"a\x00b", "control character U+0000 in name"},
		{"a\nb", "control character U+000A in name"},
		{"a\u0085b", "control character U+0085 in name"},
		{"a\xffb", "name is not valid UTF-8"},
	}
	for _, tt := range tests {
		err := CheckName(tt.name)
		if tt.reason == "" {
			if err != nil {
				t.Errorf("CheckName(%q) = %v, want nil", tt.name, err)
			}
			continue
		}
		var ee *EntryError
		switch {
		case err == nil:
			t.Errorf("CheckName(%q) = nil, want %q", tt.name, tt.reason)
		case !errors.As(err, &ee) || ee.Entry != tt.name || !strings.Contains(ee.Reason, tt.reason):
			t.Errorf("CheckName(%q) = %v, want an *EntryError with reason %q", tt.name, err, tt.reason)
		case !errors.Is(err, ErrUnsafe):
			t.Errorf("CheckName(%q) = %v, not ErrUnsafe", tt.name, err)
		}
	}
}

func TestEntryErrorMessage(t *testing.T) {
	want := `entry "a/../b": path traversal ("..")`
	if got := CheckName("a/../b").Error(); got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

// TestCheckEntries builds each bad archive with archive/zip, reads it with a
// Reader and checks the finished entry list.
func TestCheckEntries(t *testing.T) {
	f := func(name string, mode fs.FileMode) file {
		data := []byte("data of " + name)
		if mode.IsDir() {
			data = nil
		}
		return file{name: name, data: data, mode: mode, method: Deflate}
	}
	meta := MetadataName
	tests := []struct {
		name  string
		files []file
		lim   Limits
		kind  error
		want  []string // one per expected EntryError; nil means valid
	}{
		{"valid export", []file{f("config.ini", 0o664), f("storage/", fs.ModeDir|0o755),
			f("storage/pioreactor.sqlite", 0o644), f(meta, 0o600)}, Limits{}, nil, nil},
		{"absolute path", []file{f("/etc/cron.d/x", 0o644)}, Limits{}, ErrUnsafe,
			[]string{`entry "/etc/cron.d/x": absolute path`}},
		{"path traversal", []file{f("a/../../b", 0o644)}, Limits{}, ErrUnsafe,
			[]string{`entry "a/../../b": path traversal ("..")`}},
		{"symlink", []file{f("storage/link", fs.ModeSymlink|0o777)}, Limits{}, ErrUnsafe,
			[]string{`entry "storage/link": symbolic link`}},
		{"backslash traversal", []file{f(`storage\..\..\x`, 0o644)}, Limits{}, ErrUnsafe,
			[]string{`entry "storage\\..\\..\\x": backslash path`}},
		{"drive letter", []file{f("C:/Windows", 0o644)}, Limits{}, ErrUnsafe,
			[]string{`entry "C:/Windows": drive letter ("C:")`}},
		{"device", []file{f("dev/sda", fs.ModeDevice|0o660)}, Limits{}, ErrUnsafe,
			[]string{`entry "dev/sda": device file`}},
		{"char device", []file{f("dev/null", fs.ModeDevice|fs.ModeCharDevice|0o666)}, Limits{}, ErrUnsafe,
			[]string{`entry "dev/null": device file`}},
		{"named pipe", []file{f("fifo", fs.ModeNamedPipe|0o644)}, Limits{}, ErrUnsafe,
			[]string{`entry "fifo": named pipe`}},
		{"socket", []file{f("sock", fs.ModeSocket|0o644)}, Limits{}, ErrUnsafe,
			[]string{`entry "sock": socket`}},
		{"duplicate names", []file{f("config.ini", 0o644), f("config.ini", 0o644)}, Limits{}, ErrUnsafe,
			[]string{`entry "config.ini": duplicate name`}},
		{"duplicate directories", []file{f("d/", fs.ModeDir|0o755), f("d/", fs.ModeDir|0o755)}, Limits{}, ErrUnsafe,
			[]string{`entry "d/": duplicate name`}},
		{"duplicate metadata allowed", []file{f(meta, 0o600), f("config.ini", 0o644), f(meta, 0o600)},
			Limits{}, nil, nil},
		{"duplicate metadata in an aggregate", []file{f("leader1/"+meta, 0o600), f("leader1/"+meta, 0o600),
			f("worker1/"+meta, 0o600)}, Limits{}, nil, nil},
		{"metadata as a directory twice", []file{f(meta+"/", fs.ModeDir|0o755), f(meta+"/", fs.ModeDir|0o755)},
			Limits{}, ErrUnsafe, []string{`entry "pioreactor_export_metadata.json/": duplicate name`}},
		{"file and directory", []file{f("a", 0o644), f("a/", fs.ModeDir|0o755)}, Limits{}, ErrUnsafe,
			[]string{`entry "a/": both a file and a directory`}},
		{"file under a file", []file{f("a", 0o644), f("a/b/c", 0o644)}, Limits{}, ErrUnsafe,
			[]string{`entry "a/b/c": its parent "a" is a file`}},
		{"file over a directory", []file{f("a/b/c", 0o644), f("a/b", 0o644)}, Limits{}, ErrUnsafe,
			[]string{`entry "a/b": a file, but earlier entries use it as a directory`}},
		{"entry count limit", []file{f("a", 0o644), f("b", 0o644), f("c", 0o644)}, Limits{MaxEntries: 2},
			ErrLimit, []string{`entry "c": archive has 3 entries, more than 2 (limit MaxEntries)`}},
		{"entry size limit", []file{f("big", 0o644)}, Limits{MaxEntrySize: 5},
			ErrLimit, []string{`entry "big": 11 bytes, more than 5 (limit MaxEntrySize)`}},
		{"total size limit", []file{f("a", 0o644), f("b", 0o644), f("c", 0o644)}, Limits{MaxTotalSize: 20},
			ErrLimit, []string{`entry "c": total content reaches 27 bytes, more than 20 (limit MaxTotalSize)`}},
		{"several problems", []file{f("/abs", 0o644), f("ok", 0o644), f("l", fs.ModeSymlink|0o777), f("ok", 0o644)},
			Limits{}, ErrUnsafe, []string{`entry "/abs": absolute path`, `entry "l": symbolic link`,
				`entry "ok": duplicate name`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, hdrs, err := readArchive(makeZip(t, tt.files...), Limits{})
			if err != nil {
				t.Fatalf("read: %v", err)
			}
			err = CheckEntries(hdrs, tt.lim)
			if tt.want == nil {
				if err != nil {
					t.Fatalf("CheckEntries: %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("CheckEntries = nil, want %q", tt.want)
			}
			if !errors.Is(err, tt.kind) {
				t.Errorf("%v is not %v", err, tt.kind)
			}
			lines := strings.Split(err.Error(), "\n")
			if len(lines) != len(tt.want) {
				t.Fatalf("got %d errors:\n%v\nwant %d: %q", len(lines), err, len(tt.want), tt.want)
			}
			for i, w := range tt.want {
				if !strings.HasPrefix(lines[i], w) {
					t.Errorf("error %d: %q, want prefix %q", i, lines[i], w)
				}
			}
		})
	}
}

// TestFileMode checks the mode conversion from the central
// directory's external attributes for every creator system.
func TestFileMode(t *testing.T) {
	tests := []struct {
		creator uint16
		attr    uint32
		isDir   bool
		want    fs.FileMode
	}{
		{creatorUnix, 0o100644 << 16, false, 0o644},
		{creatorUnix, 0o040775<<16 | dosDir, true, fs.ModeDir | 0o775},
		{creatorUnix, 0o120777 << 16, false, fs.ModeSymlink | 0o777},
		{creatorUnix, 0o060660 << 16, false, fs.ModeDevice | 0o660},
		{creatorUnix, 0o020666 << 16, false, fs.ModeDevice | fs.ModeCharDevice | 0o666},
		{creatorUnix, 0o010644 << 16, false, fs.ModeNamedPipe | 0o644},
		{creatorUnix, 0o140755 << 16, false, fs.ModeSocket | 0o755},
		{creatorUnix, 0o104755 << 16, false, fs.ModeSetuid | 0o755},
		{creatorUnix, 0o102755 << 16, false, fs.ModeSetgid | 0o755},
		{creatorUnix, 0o041777 << 16, true, fs.ModeDir | fs.ModeSticky | 0o777},
		{creatorUnix, 0o600 << 16, false, 0o600}, // Python ZipInfo without type bits
		{creatorUnix, 0, false, 0o666},           // no Unix mode: MS-DOS bits
		{creatorFAT, dosDir, true, fs.ModeDir | 0o777},
		{creatorFAT, dosReadOnly, false, 0o444},
		{creatorNTFS, 0x20, false, 0o666},
		{creatorMacOS, 0o100600 << 16, false, 0o600},
		{99, 0, false, 0},
		{99, 0, true, fs.ModeDir},
	}
	for _, tt := range tests {
		if got := fileMode(tt.creator, tt.attr, tt.isDir); got != tt.want {
			t.Errorf("fileMode(%d, %#o, %v) = %v, want %v", tt.creator, tt.attr, tt.isDir, got, tt.want)
		}
	}
}

// TestCheckEntriesDirectoryContent checks a directory entry with content,
// which neither archive/zip nor the Reader produce, on a hand-made list.
func TestCheckEntriesDirectoryContent(t *testing.T) {
	hdrs := []Header{{Name: "d/", Size: 6, Mode: fs.ModeDir | 0o755}}
	err := CheckEntries(hdrs, Limits{})
	want := `entry "d/": directory entry with 6 bytes of content`
	if err == nil || err.Error() != want || !errors.Is(err, ErrUnsafe) {
		t.Errorf("CheckEntries = %v, want %q", err, want)
	}
}
