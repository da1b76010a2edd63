// Package store keeps piosnap's repository: content-addressed chunks, one
// manifest per version, the writer lock, integrity checks, repair of
// damaged packs and garbage collection, on top of any Backend (local disk
// or S3-compatible storage).
package store
