package simulator

import (
	"archive/zip"
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"
	"unicode/utf8"
)

const (
	importLock           = "import-dot-pioreactor-lock"
	validationCause      = "Zip archive failed validation."
	validationRemedy     = "Ensure the archive is a valid Pioreactor export and retry."
	temporaryCacheOption = "/run/pioreactor/cache/local_intermittent_pioreactor_metadata.sqlite"
)

// taskResult is what the unit's huey store holds for a task id.
type taskResult struct {
	done   bool
	locked bool
	err    string
}

func (u *Unit) handleImport(w http.ResponseWriter, r *http.Request) {
	if u.sentinelPresent() {
		writeError(w, http.StatusForbidden, "DISALLOW_UI_FILE_SYSTEM is present",
			"File system operations are disabled on this unit.",
			"Remove DISALLOW_UI_FILE_SYSTEM or run the import locally via SSH.")
		return
	}
	u.mu.Lock()
	locked := u.importing
	u.mu.Unlock()
	if locked {
		writeJSON(w, http.StatusAccepted, lockedReply())
		return
	}
	tmp, err := u.saveUpload(r)
	if errors.Is(err, errNoArchive) {
		writeError(w, http.StatusBadRequest, "No archive uploaded", "Missing 'archive' file in multipart form-data.", "")
		return
	}
	if err != nil {
		writeError(w, http.StatusInternalServerError, "Failed to save uploaded archive", err.Error(), "")
		return
	}
	if status, msg, cause, remedy := validateArchive(tmp, u.name); status != 0 {
		writeError(w, status, msg, cause, remedy)
		return
	}
	id := newTaskID()
	u.mu.Lock()
	if u.closed {
		u.mu.Unlock()
		writeError(w, http.StatusInternalServerError, "Failed to enqueue import task", "the unit is shutting down", "")
		return
	}
	u.tasks[id] = taskResult{}
	u.queued++
	u.wg.Add(1)
	u.mu.Unlock()
	go func() {
		defer u.wg.Done()
		u.runImport(u.c.ctx, id, tmp)
	}()
	writeJSON(w, http.StatusAccepted, struct {
		Unit          string `json:"unit"`
		TaskID        string `json:"task_id"`
		ResultURLPath string `json:"result_url_path"`
		Status        string `json:"status"`
	}{u.name, id, "/unit_api/task_results/" + id, "accepted"})
}

func lockedReply() any {
	return struct {
		Status      string `json:"status"`
		Lock        string `json:"lock"`
		RetryAfter  int    `json:"retry_after_s"`
		Remediation string `json:"remediation"`
	}{"running", importLock, 1, "Wait for the running operation to finish, then retry."}
}

var errNoArchive = errors.New("no archive part")

// taskError is a failure message of the real import task, kept verbatim
// (capitalised) because clients see it in the task result.
type taskError string

func (e taskError) Error() string { return string(e) }

const (
	errBackup   taskError = "Failed to backup existing DOT_PIOREACTOR"
	errWriteNew taskError = "Failed to write new DOT_PIOREACTOR contents"
)

// saveUpload stores the multipart part "archive" in the unit's $TMPDIR with
// mode 0640, as the real endpoint does.
func (u *Unit) saveUpload(r *http.Request) (string, error) {
	mr, err := multipartReader(r)
	if err != nil {
		return "", errNoArchive
	}
	for {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			return "", errNoArchive
		}
		if err != nil {
			return "", fmt.Errorf("read multipart body: %w", err)
		}
		if part.FormName() != "archive" || part.FileName() == "" {
			continue
		}
		f, err := os.CreateTemp(u.tmp, "import_dot_pioreactor_*.zip")
		if err != nil {
			return "", fmt.Errorf("create upload file: %w", err)
		}
		_, err = io.Copy(&tmpWriter{w: f, path: f.Name(), left: u.tmpFree()}, part)
		err = errors.Join(err, f.Chmod(0o640), f.Close())
		if err != nil {
			return "", fmt.Errorf("save upload to %s: %w", f.Name(), err)
		}
		return f.Name(), nil
	}
}

// validateArchive mirrors tasks.validate_dot_pioreactor_archive. A zero
// status means the archive is accepted.
func validateArchive(p, hostname string) (status int, msg, cause, remedy string) {
	zr, err := zip.OpenReader(p)
	if err != nil {
		return http.StatusBadRequest, "Uploaded file is not a valid zip archive", "", ""
	}
	defer zr.Close()
	var meta *zip.File
	for _, f := range zr.File {
		if m := memberProblem(f); m != "" {
			return http.StatusBadRequest, m, validationCause, validationRemedy
		}
		if f.Name == metadataName {
			meta = f // ZipFile.read returns the last entry of that name
		}
	}
	if meta == nil {
		return 0, "", "", ""
	}
	raw, err := readMember(meta)
	var v any
	if err != nil || !utf8.Valid(raw) || json.Unmarshal(raw, &v) != nil {
		return http.StatusBadRequest, "Archive metadata invalid", validationCause, validationRemedy
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return http.StatusInternalServerError, "Failed to inspect uploaded archive", "", ""
	}
	if name := obj["name"]; truthy(name) && name != hostname {
		return http.StatusBadRequest, fmt.Sprintf("Archive prepared for %s, cannot import into %s", pyStr(name), hostname),
			validationCause, validationRemedy
	}
	return 0, "", "", ""
}

func memberProblem(f *zip.File) string {
	switch {
	case strings.HasPrefix(f.Name, "/"):
		return "Archive contains absolute paths, aborting import."
	case hasDotDot(f.Name):
		return "Archive contains path traversal, aborting import."
	case (f.ExternalAttrs>>16)&0o120000 == 0o120000:
		return "Archive contains symbolic links, aborting import."
	}
	return ""
}

func hasDotDot(name string) bool {
	for _, part := range strings.Split(name, "/") {
		if part == ".." {
			return true
		}
	}
	return false
}

func readMember(f *zip.File) ([]byte, error) {
	rc, err := f.Open()
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(rc)
}

// truthy is Python truthiness for decoded JSON values.
func truthy(v any) bool {
	switch x := v.(type) {
	case nil:
		return false
	case string:
		return x != ""
	case bool:
		return x
	case float64:
		return x != 0
	case []any:
		return len(x) > 0
	case map[string]any:
		return len(x) > 0
	}
	return true
}

// pyStr renders a decoded JSON value as Python's str() would in an f-string.
func pyStr(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case bool:
		if x {
			return "True"
		}
		return "False"
	}
	b, _ := json.Marshal(v)
	return string(b)
}

func (u *Unit) handleTaskResult(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	u.mu.Lock()
	res, ok := u.tasks[id]
	u.mu.Unlock()
	base := map[string]any{"task_id": id, "result_url_path": "/unit_api/task_results/" + id}
	switch {
	case !ok || !res.done:
		base["status"] = "pending"
		writeJSON(w, http.StatusAccepted, base)
	case res.locked:
		base["status"] = "running"
		base["error"] = "task is locked and already running."
		base["cause"] = "Another task holds the lock " + importLock + "."
		base["remediation"] = "Wait for the running operation to finish, then retry."
		writeJSON(w, http.StatusAccepted, base)
	case res.err != "":
		base["status"] = "failed"
		base["error"] = res.err
		base["cause"] = "Huey task failed with an exception."
		base["remediation"] = "Check logs and retry."
		writeJSON(w, http.StatusOK, base)
	default:
		base["status"] = "succeeded"
		base["result"] = true
		writeJSON(w, http.StatusOK, base)
	}
}

// runImport is the huey task import_dot_pioreactor_archive, holding the
// import lock while it runs.
func (u *Unit) runImport(ctx context.Context, id, upload string) {
	u.mu.Lock()
	u.queued--
	if u.importing {
		u.tasks[id] = taskResult{done: true, locked: true}
		u.notifyLocked()
		u.mu.Unlock()
		return
	}
	u.importing = true
	fail := u.failNext
	u.failNext = nil
	u.notifyLocked()
	u.mu.Unlock()

	var err error
	switch {
	case u.hold(ctx, time.Now(), &u.importDelay) != nil:
		err = errors.New("import cancelled: the simulator is shutting down")
	case fail != nil:
		err = errors.New(*fail)
	default:
		err = u.replaceDir(upload)
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	u.importing = false
	res := taskResult{done: true}
	if err != nil {
		res.err = err.Error()
		u.c.opts.Logger.Error("import task failed", "unit", u.name, "task", id, "err", err)
	}
	u.tasks[id] = res
	u.notifyLocked()
	if err != nil {
		return
	}
	// reboot(wait=2) is enqueued as its own task; the import returns True.
	u.imports++
	u.pendingReboots++
	u.wg.Add(1)
	go func() {
		defer u.wg.Done()
		u.reboot(ctx)
	}()
}

// replaceDir performs the task body: extract, back up, move in, keep ui/ and
// hardware/, rewrite config.ini.
func (u *Unit) replaceDir(upload string) error {
	now := time.Now()
	extract, err := os.MkdirTemp(u.tmp, "dot_pioreactor_import_")
	if err != nil {
		return fmt.Errorf("create extraction root: %w", err)
	}
	if err := extractAll(upload, extract, u.tmpFree()); err != nil {
		return err
	}
	backup := filepath.Join(u.tmp, u.name+"_dot_pioreactor_backup_"+utcTimestamp(now))
	if err := os.Mkdir(backup, 0o775); err != nil {
		return errBackup
	}
	// ~/.pioreactor is on the SD card and /tmp in RAM, so moving it there
	// copies it. The real task may fail half way through the move; here it
	// fails before moving anything.
	if dirSize(u.dir) > u.tmpFree() {
		return errBackup
	}
	if err := moveChildren(u.dir, backup); err != nil {
		return errBackup
	}
	if err := u.moveIn(extract, backup); err != nil {
		u.c.opts.Logger.Error("import: write failed, restoring backup", "unit", u.name, "err", err)
		if rerr := restoreBackup(u.dir, backup); rerr != nil {
			u.c.opts.Logger.Error("import: restore from backup failed", "unit", u.name, "err", rerr)
		}
		return errWriteNew
	}
	return nil
}

func (u *Unit) moveIn(extract, backup string) error {
	if err := moveChildren(extract, u.dir); err != nil {
		return err
	}
	for _, keep := range []string{"ui", "hardware"} {
		dst := filepath.Join(u.dir, keep)
		if _, err := os.Lstat(dst); err == nil {
			continue
		}
		src := filepath.Join(backup, keep)
		if _, err := os.Lstat(src); err != nil {
			continue
		}
		if err := os.Rename(src, dst); err != nil {
			return fmt.Errorf("restore %s from backup: %w", keep, err)
		}
	}
	return rewriteConfig(filepath.Join(u.dir, "config.ini"))
}

func restoreBackup(dir, backup string) error {
	if err := wipeDir(dir); err != nil {
		return err
	}
	return moveChildren(backup, dir)
}

func moveChildren(from, to string) error {
	ents, err := os.ReadDir(from)
	if err != nil {
		return err
	}
	for _, e := range ents {
		if err := os.Rename(filepath.Join(from, e.Name()), filepath.Join(to, e.Name())); err != nil {
			return err
		}
	}
	return nil
}

// extractAll behaves like ZipFile.extractall: later members with the same
// name overwrite earlier ones, modes and mtimes are not restored (files get
// 0666 and directories 0777, less the umask). Writing more than free bytes
// fails with ENOSPC, as extracting into a full tmpfs does, leaving what was
// written.
func extractAll(zipPath, dst string, free int64) error {
	zr, err := zip.OpenReader(zipPath)
	if err != nil {
		return fmt.Errorf("open uploaded archive %s: %w", zipPath, err)
	}
	defer zr.Close()
	for _, f := range zr.File {
		rel := path.Clean("/" + f.Name)[1:]
		if rel == "" {
			continue
		}
		target := filepath.Join(dst, filepath.FromSlash(rel))
		if strings.HasSuffix(f.Name, "/") {
			if err := os.MkdirAll(target, 0o777); err != nil {
				return fmt.Errorf("extract %s: %w", f.Name, err)
			}
			continue
		}
		if err := extractFile(f, target, &free); err != nil {
			if errors.As(err, new(noSpaceError)) {
				return taskError(noSpace) // Python's OSError on write names no file
			}
			return fmt.Errorf("extract %s: %w", f.Name, err)
		}
	}
	return nil
}

func extractFile(f *zip.File, target string, free *int64) error {
	if err := os.MkdirAll(filepath.Dir(target), 0o777); err != nil {
		return err
	}
	rc, err := f.Open()
	if err != nil {
		return err
	}
	defer rc.Close()
	out, err := os.Create(target)
	if err != nil {
		return err
	}
	tw := &tmpWriter{w: out, path: target, left: *free}
	_, err = io.Copy(tw, rc)
	*free = tw.left
	return errors.Join(err, out.Close())
}

// importBody builds the leader's forwarded multipart body: a single part
// "archive" of type application/zip, boundary ----PioreactorBoundary<hex>.
// The body reads data in place, so the archive is held in memory once.
func importBody(filename string, data []byte) (body io.Reader, size int64, contentType string) {
	boundary := "----PioreactorBoundary" + strings.ReplaceAll(newTaskID(), "-", "")
	head := fmt.Sprintf("--%s\r\nContent-Disposition: form-data; name=\"archive\"; filename=\"%s\"\r\nContent-Type: application/zip\r\n\r\n", boundary, filename)
	tail := fmt.Sprintf("\r\n--%s--\r\n", boundary)
	body = io.MultiReader(strings.NewReader(head), bytes.NewReader(data), strings.NewReader(tail))
	return body, int64(len(head) + len(data) + len(tail)), "multipart/form-data; boundary=" + boundary
}

// uploadBuffer is how much of a request body a multipart parse reads from
// the socket at a time. With net/http's 4 KiB, a large upload took one read
// system call per 2 KiB, which made the simulator's receiving side, not the
// client, the slow end of an upload benchmark.
const uploadBuffer = 64 << 10

// multipartReader is http.Request.MultipartReader reading the body in
// uploadBuffer blocks, so that a large upload costs few system calls.
func multipartReader(r *http.Request) (*multipart.Reader, error) {
	mt, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/form-data" || params["boundary"] == "" {
		return nil, errNoArchive
	}
	return multipart.NewReader(bufio.NewReaderSize(r.Body, uploadBuffer), params["boundary"]), nil
}
