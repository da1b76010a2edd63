package web

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/klauspost/compress/gzhttp"

	"github.com/piosnap/piosnap/store"
)

// perPage is how many versions a unit's page shows at once.
const perPage = 100

// pageTimeout bounds reading the repositories for one page.
const pageTimeout = 60 * time.Second

func parsePages(zone *time.Location) (map[string]*template.Template, error) {
	funcs := template.FuncMap{
		"when": func(t time.Time) string {
			if t.IsZero() {
				return "never"
			}
			return t.In(zone).Format("2006-01-02 15:04 MST")
		},
		"clock":  func(t time.Time) string { return t.In(zone).Format("15:04:05") },
		"iso":    func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
		"bytes":  HumanBytes,
		"kind":   kindLabel,
		"join":   strings.Join,
		"add":    func(a, b int) int { return a + b },
		"first":  func(n int, s []string) []string { return s[:min(n, len(s))] },
		"more":   func(n int, s []string) int { return max(0, len(s)-n) },
		"signed": func(n int64) string { return map[bool]string{true: "+", false: ""}[n >= 0] + HumanBytes(n) },
		"pct": func(a, b int64) int64 {
			if b <= 0 {
				return 0
			}
			return a * 100 / b
		},
	}
	base, err := template.New("base").Funcs(funcs).ParseFS(files, "templates/base.html", "templates/partials.html")
	if err != nil {
		return nil, err
	}
	pages := map[string]*template.Template{}
	for _, name := range []string{"login", "overview", "status", "unit", "restore", "check", "job", "error"} {
		t, err := template.Must(base.Clone()).ParseFS(files, "templates/"+name+".html")
		if err != nil {
			return nil, err
		}
		pages[name] = t
	}
	return pages, nil
}

// render executes page into a buffer first, so that a template error
// becomes a clean 500 instead of half a page.
func (s *Server) render(w http.ResponseWriter, code int, page string, data map[string]any) {
	var buf bytes.Buffer
	if err := s.pages[page].ExecuteTemplate(&buf, "base", data); err != nil {
		s.cfg.Log.Error("web: render page", "page", page, "err", err)
		http.Error(w, "internal error rendering the page", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(code)
	_, _ = w.Write(buf.Bytes())
}

func (s *Server) renderError(w http.ResponseWriter, code int, sess *session, title, msg string) {
	s.render(w, code, "error", map[string]any{"Title": title, "Message": msg, "CSRF": csrfOf(sess)})
}

func csrfOf(s *session) string {
	if s == nil {
		return ""
	}
	return s.csrf
}

// status reads the status document.
func (s *Server) status(ctx context.Context) (*statusDoc, error) {
	b, err := s.src.StatusJSON(ctx)
	if err != nil {
		return nil, err
	}
	return parseStatus(b)
}

func (s *Server) overview(w http.ResponseWriter, r *http.Request, sess *session) {
	ctx, cancel := context.WithTimeout(r.Context(), pageTimeout)
	defer cancel()
	st, err := s.status(ctx)
	if err != nil {
		s.renderError(w, http.StatusInternalServerError, sess, "Status unavailable", err.Error())
		return
	}
	vs, err := s.src.Versions(ctx)
	if err != nil {
		s.renderError(w, http.StatusInternalServerError, sess, "Versions unavailable", err.Error())
		return
	}
	s.render(w, http.StatusOK, "overview", map[string]any{
		"Title": "Overview", "CSRF": sess.csrf, "O": buildOverview(st, vs, s.cfg.Zone), "Running": s.jobs.running(), "Jobs": s.jobs.list(),
		"Notices": s.src.Notices(ctx),
	})
}

// publicStatus is the read-only freshness page, when the config allows it.
func (s *Server) publicStatus(w http.ResponseWriter, r *http.Request) {
	if !s.cfg.PublicStatus {
		http.Redirect(w, r, "/login?next=%2F", http.StatusSeeOther)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), pageTimeout)
	defer cancel()
	st, err := s.status(ctx)
	if err != nil {
		s.renderError(w, http.StatusInternalServerError, nil, "Status unavailable", err.Error())
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	s.render(w, http.StatusOK, "status", map[string]any{"Title": "Backup status", "O": buildOverview(st, nil, s.cfg.Zone), "Public": true})
}

// unitVersionsOf reads host's versions from every store.
func (s *Server) unitVersionsOf(ctx context.Context, host string) ([]*storedVersion, []StoreVersions, error) {
	vs, err := s.src.Versions(ctx)
	if err != nil {
		return nil, nil, err
	}
	return uniqueVersions(vs)[host], vs, nil
}

func (s *Server) unitPage(w http.ResponseWriter, r *http.Request, sess *session) {
	unit := r.PathValue("unit")
	ctx, cancel := context.WithTimeout(r.Context(), pageTimeout)
	defer cancel()
	hv, vs, err := s.unitVersionsOf(ctx, unit)
	if err != nil {
		s.renderError(w, http.StatusInternalServerError, sess, "Versions unavailable", err.Error())
		return
	}
	var storeErrs []string
	for _, sv := range vs {
		if sv.Err != nil {
			storeErrs = append(storeErrs, fmt.Sprintf("store %s: %v", sv.Store, sv.Err))
		}
	}
	if len(hv) == 0 && len(storeErrs) == 0 {
		s.renderError(w, http.StatusNotFound, sess, "No such unit", fmt.Sprintf("There are no versions of %q in any store.", unit))
		return
	}
	page, _ := strconv.Atoi(r.URL.Query().Get("page"))
	page = max(page, 0)
	days, more := unitVersions(hv, s.cfg.Zone, page, perPage)
	if st, err := s.status(ctx); err == nil {
		markDamaged(days, damagedVersions(readings(st, s.cfg.Zone)))
	}
	data := map[string]any{
		"Title": unit, "CSRF": sess.csrf, "Unit": unit, "Days": days, "Count": len(hv),
		"Page": page, "More": more, "StoreErrors": storeErrs, "Running": s.jobs.running(),
		"CanTar": s.cfg.WriteTar != nil,
	}
	if isDirSource(hv) {
		data["DirRestore"] = dirRestoreRefusal(unit)
	}
	if len(hv) > 0 {
		data["Chart"] = sizeChart(hv)
		data["Newest"] = hv[0].v
	}
	s.render(w, http.StatusOK, "unit", data)
}

// download streams a version as `piosnap export` writes it: a Pioreactor
// unit's version as the ZIP Pioreactor's import accepts (tar false), a
// directory source's as a tar (tar true). The other format is refused.
func (s *Server) download(tar bool) authedHandler {
	return func(w http.ResponseWriter, r *http.Request, sess *session) {
		unit, storeName, id := r.PathValue("unit"), r.PathValue("store"), r.PathValue("id")
		ctx := r.Context()
		vs, err := s.src.Versions(ctx)
		if err != nil {
			s.renderError(w, http.StatusInternalServerError, sess, "Versions unavailable", err.Error())
			return
		}
		for _, sv := range vs {
			if sv.Store != storeName || sv.Repo == nil {
				continue
			}
			for _, v := range sv.Versions {
				if v.ID != id || v.Host != unit {
					continue
				}
				s.writeDownload(w, r, sess, tar, storeName, sv.Repo, v)
				return
			}
		}
		s.renderError(w, http.StatusNotFound, sess, "No such version", fmt.Sprintf("Store %q has no version %q of %s.", storeName, id, unit))
	}
}

func (s *Server) writeDownload(w http.ResponseWriter, r *http.Request, sess *session, tar bool, storeName string, repo *store.Repository, v *store.Version) {
	ctx := r.Context()
	dir := v.Source == dirSourceKind
	switch {
	case dir && !tar:
		s.renderError(w, http.StatusNotFound, sess, "No ZIP of this version", fmt.Sprintf("Version %s of %s is a directory source's version: it downloads as a tar (the link on %s's page), not as a ZIP.", v.ShortID(), v.Host, v.Host))
		return
	case !dir && tar:
		s.renderError(w, http.StatusNotFound, sess, "No tar of this version", fmt.Sprintf("Version %s of %s is a Pioreactor unit's version: it downloads as a ZIP (the link on %s's page), not as a tar.", v.ShortID(), v.Host, v.Host))
		return
	case tar && s.cfg.WriteTar == nil:
		s.renderError(w, http.StatusNotFound, sess, "No download", fmt.Sprintf("This server cannot write a tar of version %s of %s: run `piosnap export --host %s --version %s -o %s.tar` on the server.", v.ShortID(), v.Host, v.Host, v.ShortID(), v.Host))
		return
	}
	hold, err := repo.Hold(ctx, "export", v.ID)
	if err != nil {
		s.renderError(w, http.StatusInternalServerError, sess, "Cannot hold the version", err.Error())
		return
	}
	defer hold.Unlock(context.WithoutCancel(ctx))
	stamp := v.Time.In(s.cfg.Zone).Format("2006-01-02_1504")
	name, ctype := fmt.Sprintf("%s_dot_pioreactor_%s.zip", v.Host, stamp), "application/zip"
	write := func(bw *bufio.Writer) error { return repo.WriteZip(ctx, bw, v) }
	if tar {
		name, ctype = fmt.Sprintf("%s_%s.tar", v.Host, stamp), "application/x-tar"
		write = func(bw *bufio.Writer) error { return s.cfg.WriteTar(ctx, bw, repo, v) }
		// Mostly compressed data on a server's disk: not worth gzip's CPU.
		w.Header().Set(gzhttp.HeaderNoCompression, "1")
	}
	w.Header().Set("Content-Type", ctype)
	w.Header().Set("Content-Disposition", fmt.Sprintf("attachment; filename=%q", name))
	bw := bufio.NewWriterSize(w, 256<<10)
	if err := write(bw); err != nil {
		// Abort the connection, so that the browser reports a failed
		// download instead of keeping a truncated archive.
		s.cfg.Log.Error("web: download failed midway; run `piosnap check --read-data`", "unit", v.Host, "version", v.ShortID(), "store", storeName, "err", err)
		panic(http.ErrAbortHandler)
	}
	_ = bw.Flush()
	s.cfg.Log.Info("web: version downloaded", "unit", v.Host, "version", v.ShortID(), "store", storeName, "format", ctype, "client", clientAddr(r))
}

// dirSourceKind is the Source of a directory source's versions (as
// archive/dir names it): folders and a database on the server itself.
const dirSourceKind = "dir"

// isDirSource reports whether hv, a host's versions, are a directory
// source's.
func isDirSource(hv []*storedVersion) bool {
	for _, sv := range hv {
		if sv.v.Source == dirSourceKind {
			return true
		}
	}
	return false
}

// dirRestoreRefusal says why the pages do not restore a directory source
// and what to run instead.
func dirRestoreRefusal(unit string) string {
	return fmt.Sprintf("%s is a directory source on the server, and this page restores Pioreactor units only. "+
		"Restoring %s stops it, swaps its folders, reloads its database and sets file owners, which needs root: "+
		"run it on the server, checking first: `sudo piosnap restore --host %s --version ID --dry-run`, "+
		"then the same without --dry-run (`piosnap list --host %s` shows the versions).", unit, unit, unit, unit)
}

// dirRestore reports whether unit is a directory source, which the web
// does not restore, and logs the refusal with the refusal's message.
func (s *Server) dirRestore(r *http.Request, unit string) (msg string, dir bool) {
	ctx, cancel := context.WithTimeout(r.Context(), pageTimeout)
	defer cancel()
	hv, _, err := s.unitVersionsOf(ctx, unit)
	if err != nil || !isDirSource(hv) {
		return "", false // the restore reports what it cannot read
	}
	s.cfg.Log.Warn("web: restore of a directory source refused", "unit", unit, "client", clientAddr(r))
	return dirRestoreRefusal(unit), true
}

// refuseDirRestore renders the refusal and returns true when unit is a
// directory source.
func (s *Server) refuseDirRestore(w http.ResponseWriter, r *http.Request, sess *session, unit string) bool {
	msg, dir := s.dirRestore(r, unit)
	if dir {
		s.renderError(w, http.StatusBadRequest, sess, "Restore "+unit+" on the server", msg+" Nothing was changed.")
	}
	return dir
}

func (s *Server) restorePage(w http.ResponseWriter, r *http.Request, sess *session) {
	unit := r.PathValue("unit")
	ctx, cancel := context.WithTimeout(r.Context(), pageTimeout)
	defer cancel()
	hv, _, err := s.unitVersionsOf(ctx, unit)
	if err != nil {
		s.renderError(w, http.StatusInternalServerError, sess, "Versions unavailable", err.Error())
		return
	}
	if len(hv) == 0 {
		s.renderError(w, http.StatusNotFound, sess, "No such unit", fmt.Sprintf("There are no versions of %q in any store.", unit))
		return
	}
	if isDirSource(hv) {
		s.renderError(w, http.StatusBadRequest, sess, "Restore "+unit+" on the server", dirRestoreRefusal(unit))
		return
	}
	const listed = 30
	days, _ := unitVersions(hv, s.cfg.Zone, 0, listed)
	var picked *versionRow // a version older than the list, picked on the unit's page
	version := r.URL.Query().Get("version")
	for i, sv := range hv {
		if sv.v.ID == version && i >= listed {
			picked = &versionRow{ID: sv.v.ID, Short: sv.v.ShortID(), Time: sv.v.Time, Kind: sv.v.Kind, Size: sv.v.Size}
		}
	}
	s.render(w, http.StatusOK, "restore", map[string]any{
		"Title": "Restore " + unit, "CSRF": sess.csrf, "Unit": unit, "Days": days, "Picked": picked,
		"Version": version, "Store": r.URL.Query().Get("store"),
		"Today": s.now().In(s.cfg.Zone).Format("2006-01-02"), "Oldest": hv[len(hv)-1].v.Time.In(s.cfg.Zone).Format("2006-01-02"),
		"Running": s.jobs.running(),
	})
}

// restoreRequest reads the restore form: a version, or a date and an
// optional time of day.
func restoreRequest(r *http.Request) (RestoreRequest, error) {
	req := RestoreRequest{Unit: r.PathValue("unit"), Store: r.PostFormValue("store"), Version: r.PostFormValue("version")}
	if req.Version == "" {
		date, clock := strings.TrimSpace(r.PostFormValue("date")), strings.TrimSpace(r.PostFormValue("time"))
		switch {
		case date == "":
			return req, errors.New("pick a version, or a date")
		case clock != "":
			req.At = date + " " + clock
		default:
			req.At = date
		}
	}
	return req, nil
}

// restoreCheck runs the dry run and shows its checks with the confirmation
// form.
func (s *Server) restoreCheck(w http.ResponseWriter, r *http.Request, sess *session) {
	req, err := restoreRequest(r)
	if err != nil {
		s.renderError(w, http.StatusBadRequest, sess, "Nothing to restore", err.Error())
		return
	}
	if s.refuseDirRestore(w, r, sess, req.Unit) {
		return
	}
	plan, err := s.restore.DryRun(r.Context(), req)
	data := map[string]any{"Title": "Check restore of " + req.Unit, "CSRF": sess.csrf, "Unit": req.Unit, "Req": req, "Plan": plan, "Running": s.jobs.running()}
	if err != nil {
		data["Error"] = err.Error()
		s.render(w, http.StatusUnprocessableEntity, "check", data)
		return
	}
	s.render(w, http.StatusOK, "check", data)
}

// restoreStart starts the restore the user confirmed by typing the unit's
// name.
func (s *Server) restoreStart(w http.ResponseWriter, r *http.Request, sess *session) {
	unit := r.PathValue("unit")
	if s.refuseDirRestore(w, r, sess, unit) {
		return
	}
	req := RestoreRequest{Unit: unit, Store: r.PostFormValue("store"), Version: r.PostFormValue("version")}
	switch err := confirmRestore(req, r.PostFormValue("confirm")); {
	case errors.Is(err, errNotChecked):
		s.renderError(w, http.StatusBadRequest, sess, "Restore refused", "The restore form lacks the checked version: start again from the unit's page.")
		return
	case errors.Is(err, errNotConfirmed):
		s.renderError(w, http.StatusBadRequest, sess, "Restore not confirmed", fmt.Sprintf("To confirm, type the unit's name, %s, exactly. Nothing was changed.", unit))
		return
	}
	job, err := s.startRestore(r, req)
	if err != nil {
		s.renderError(w, http.StatusConflict, sess, "Busy", err.Error())
		return
	}
	http.Redirect(w, r, "/jobs/"+job.ID, http.StatusSeeOther)
}

// startRestore starts the restore of a confirmed request as a job, unless
// another job runs.
func (s *Server) startRestore(r *http.Request, req RestoreRequest) (*Job, error) {
	job, err := s.jobs.start(KindRestore, &req, func(ctx context.Context, h *jobHandle) error {
		return s.restore.Restore(ctx, req, h.event)
	})
	if err != nil {
		return nil, err
	}
	s.cfg.Log.Info("web: restore started", "job", job.ID, "unit", req.Unit, "version", req.Version[:8], "store", req.Store, "client", clientAddr(r))
	return job, nil
}

func (s *Server) startBackup() (*Job, error) {
	return s.jobs.start(KindBackup, nil, func(ctx context.Context, h *jobHandle) error {
		return s.backup.BackupNow(ctx, h.say)
	})
}

func (s *Server) backupStart(w http.ResponseWriter, r *http.Request, sess *session) {
	job, err := s.startBackup()
	if err != nil {
		s.renderError(w, http.StatusConflict, sess, "Busy", err.Error())
		return
	}
	s.cfg.Log.Info("web: backup started", "job", job.ID, "client", clientAddr(r))
	http.Redirect(w, r, "/jobs/"+job.ID, http.StatusSeeOther)
}

func (s *Server) jobPage(w http.ResponseWriter, r *http.Request, sess *session) {
	j := s.jobs.get(r.PathValue("id"))
	if j == nil {
		s.renderError(w, http.StatusNotFound, sess, "No such job", "This job is not known: the daemon keeps the last 50 jobs until it restarts. A restore of the leader restarts it: the overview shows that restore's result once the leader has verified itself.")
		return
	}
	title := "Backup"
	if j.Kind == KindRestore {
		title = "Restore of " + j.Request.Unit
	}
	s.render(w, http.StatusOK, "job", map[string]any{"Title": title, "CSRF": sess.csrf, "Job": j})
}

// The JSON API.

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func writeJSONError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"error": msg})
}

func writeRawJSON(w http.ResponseWriter, b []byte) {
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(b)
}

func (s *Server) apiStatus(w http.ResponseWriter, r *http.Request, _ *session) {
	b, err := s.src.StatusJSON(r.Context())
	if err != nil {
		writeJSONError(w, http.StatusInternalServerError, err.Error())
		return
	}
	writeRawJSON(w, b)
}

func (s *Server) apiVersions(w http.ResponseWriter, r *http.Request, _ *session) {
	b, err := s.src.ListJSON(r.Context(), r.URL.Query().Get("host"))
	if err != nil {
		writeJSONError(w, http.StatusInternalServerError, err.Error())
		return
	}
	writeRawJSON(w, b)
}

func (s *Server) apiJobs(w http.ResponseWriter, _ *http.Request, _ *session) {
	writeJSON(w, http.StatusOK, s.jobs.list())
}

func (s *Server) apiJob(w http.ResponseWriter, r *http.Request, _ *session) {
	j := s.jobs.get(r.PathValue("id"))
	if j == nil {
		writeJSONError(w, http.StatusNotFound, "no such job")
		return
	}
	writeJSON(w, http.StatusOK, j)
}

func (s *Server) apiBackup(w http.ResponseWriter, r *http.Request, _ *session) {
	job, err := s.startBackup()
	if err != nil {
		writeJSONError(w, http.StatusConflict, err.Error())
		return
	}
	s.cfg.Log.Info("web: backup started", "job", job.ID, "client", clientAddr(r))
	writeJSON(w, http.StatusAccepted, job)
}
