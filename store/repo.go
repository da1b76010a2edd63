package store

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"runtime"
	"sync"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/restic/chunker"
)

// FormatVersion is the repository format this package writes. Format 2
// keeps blobs in packs with an index and stores SQLite databases page by
// page; it also reads format 1 (one object per chunk), and upgrades such a
// repository when it first writes to it.
const FormatVersion = 2

// oldestFormat is the oldest repository format this package reads.
const oldestFormat = 1

// DefaultPolynomial is the Rabin polynomial new repositories chunk with. Every
// piosnap repository created with the defaults uses it, so that versions
// written to several stores in one run are cut into the same chunks and
// `piosnap copy` between them moves only what the target lacks.
const DefaultPolynomial = chunker.Pol(0x340fc2266be4ad)

// configName is the object that marks a repository and describes it.
const configName = "config"

// RepoConfig is the content of the repository's "config" object.
type RepoConfig struct {
	// Format is the repository format version (FormatVersion).
	Format int `json:"format"`
	// ID identifies the repository; it is random and never changes.
	ID string `json:"id"`
	// Created is when the repository was initialised.
	Created time.Time `json:"created"`
	// Polynomial is the Rabin polynomial used for content-defined chunking.
	Polynomial chunker.Pol `json:"chunker_polynomial"`
	// ChunkMinSize and ChunkMaxSize bound chunk sizes in bytes.
	ChunkMinSize uint `json:"chunk_min_size"`
	ChunkMaxSize uint `json:"chunk_max_size"`
}

// Repository is a piosnap repository on a Backend. Its methods are safe for
// concurrent use; writers must hold the repository lock (see Lock).
type Repository struct {
	backend Backend
	config  RepoConfig
	enc     *zstd.Encoder
	dec     *zstd.Decoder
	// codec names enc's settings: the same content compressed under the
	// same codec gives the same bytes, which lets stores share frames
	// (see frameMemo).
	codec string

	zmu  sync.Mutex // guards zbuf
	zbuf []byte     // compression output, reused so a backup allocates no per-chunk buffers

	lockMu sync.Mutex // guards held
	held   *RepoLock  // the exclusive lock this process holds, if any

	idxMu sync.Mutex // guards idx
	idx   *index     // the index as last read, nil until needed
}

// ErrNoRepository is returned by Open when the backend holds no repository.
var ErrNoRepository = errors.New("no piosnap repository")

// Init creates a new, empty repository on b. It refuses a backend that
// already holds one.
func Init(ctx context.Context, b Backend) (*Repository, error) {
	if _, err := b.Stat(ctx, configName); err == nil {
		return nil, fmt.Errorf("init repository at %s: a repository already exists there", b.Location())
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("init repository at %s: %w", b.Location(), err)
	}
	id := make([]byte, 16)
	if _, err := rand.Read(id); err != nil {
		return nil, fmt.Errorf("init repository: %w", err)
	}
	cfg := RepoConfig{
		Format:       FormatVersion,
		ID:           hex.EncodeToString(id),
		Created:      time.Now().UTC().Truncate(time.Second),
		Polynomial:   DefaultPolynomial,
		ChunkMinSize: chunker.MinSize,
		ChunkMaxSize: chunker.MaxSize,
	}
	data, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("init repository: %w", err)
	}
	data = append(data, '\n')
	if err := b.Put(ctx, configName, bytes.NewReader(data), int64(len(data))); err != nil {
		return nil, fmt.Errorf("init repository at %s: %w", b.Location(), err)
	}
	return newRepository(b, cfg)
}

// Open opens the repository on b. A backend without a repository gives an
// error wrapping ErrNoRepository that says how to create one.
func Open(ctx context.Context, b Backend) (*Repository, error) {
	rc, err := b.Get(ctx, configName)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w at %s: create one with `piosnap init`", ErrNoRepository, b.Location())
	}
	if err != nil {
		return nil, fmt.Errorf("open repository at %s: %w", b.Location(), err)
	}
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("open repository at %s: read config: %w", b.Location(), err)
	}
	var cfg RepoConfig
	if err := json.Unmarshal(data, &cfg); err != nil {
		return nil, fmt.Errorf("open repository at %s: config object is damaged: %w", b.Location(), err)
	}
	if cfg.Format < oldestFormat || cfg.Format > FormatVersion {
		return nil, fmt.Errorf("open repository at %s: format %d is not supported by this piosnap (it reads formats %d to %d): upgrade piosnap", b.Location(), cfg.Format, oldestFormat, FormatVersion)
	}
	if !cfg.Polynomial.Irreducible() {
		return nil, fmt.Errorf("open repository at %s: config object is damaged: chunker polynomial %v is not irreducible", b.Location(), cfg.Polynomial)
	}
	return newRepository(b, cfg)
}

func newRepository(b Backend, cfg RepoConfig) (*Repository, error) {
	// zstd's fastest level: on a leader database it compresses 1.3 times
	// faster per core than the default level for 6 % more bytes (BENCHMARKS.md,
	// "zstd level"). One encoder per core, so that a backup's frames
	// compress in parallel (EncodeAll is safe for concurrent use).
	level := zstd.SpeedFastest
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(level), zstd.WithEncoderConcurrency(runtime.GOMAXPROCS(0)))
	if err != nil {
		return nil, fmt.Errorf("zstd encoder: %w", err)
	}
	// One decoder per read-ahead worker, so that chunks decompress in parallel.
	dec, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(readAheadWorkers()), zstd.WithDecoderMaxMemory(64<<20))
	if err != nil {
		return nil, fmt.Errorf("zstd decoder: %w", err)
	}
	if cfg.ChunkMinSize == 0 {
		cfg.ChunkMinSize = chunker.MinSize
	}
	if cfg.ChunkMaxSize == 0 {
		cfg.ChunkMaxSize = chunker.MaxSize
	}
	return &Repository{backend: b, config: cfg, enc: enc, dec: dec, codec: "zstd " + level.String()}, nil
}

// Upgrade brings a repository of an older format to the current one. From
// format 1 to 2 it only rewrites the config: old versions and their chunks
// stay where they are and are still read, and new blobs go into packs. An
// older piosnap then refuses the repository, naming its format, instead of
// missing the new versions' data. The caller holds the exclusive lock.
// Upgrading a current repository does nothing.
func (r *Repository) Upgrade(ctx context.Context) error {
	if r.config.Format >= FormatVersion {
		return nil
	}
	if err := r.checkHeld(); err != nil {
		return fmt.Errorf("upgrade repository at %s: %w", r.Location(), err)
	}
	cfg := r.config
	cfg.Format = FormatVersion
	data, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return fmt.Errorf("upgrade repository: %w", err)
	}
	data = append(data, '\n')
	if err := r.backend.Put(ctx, configName, bytes.NewReader(data), int64(len(data))); err != nil {
		return fmt.Errorf("upgrade repository at %s to format %d: %w", r.Location(), FormatVersion, err)
	}
	r.config = cfg
	return nil
}

// Config returns the repository's configuration.
func (r *Repository) Config() RepoConfig { return r.config }

// Backend returns the backend the repository lives on.
func (r *Repository) Backend() Backend { return r.backend }

// Location describes where the repository lives, for messages.
func (r *Repository) Location() string { return r.backend.Location() }
