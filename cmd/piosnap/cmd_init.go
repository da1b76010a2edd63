package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/piosnap/piosnap/store"
	"github.com/piosnap/piosnap/store/s3"
)

func cmdInit(ctx context.Context, a *app, args []string) error {
	fs := a.newFlags("init", "[--store S] [--create-bucket]")
	storeName := fs.String("store", "", "initialise only this store")
	createBucket := fs.Bool("create-bucket", false, "create a missing S3 bucket")
	if _, err := parseFlags(fs, args); err != nil {
		return err
	}
	if *storeName != "" {
		if _, err := a.cfg.Store(*storeName); err != nil {
			return usageErrorf("%v", err)
		}
	}
	var errs []error
	for i := range a.cfg.Stores {
		s := &a.cfg.Stores[i]
		if *storeName != "" && s.Name != *storeName {
			continue
		}
		b, err := a.backend(ctx, s, true)
		if err != nil {
			errs = append(errs, fmt.Errorf("store %q: %w", s.Name, err))
			continue
		}
		if sb, ok := b.(*s3.Backend); ok {
			if err := sb.Check(ctx); errors.Is(err, s3.ErrNoBucket) && *createBucket {
				if err := sb.CreateBucket(ctx); err != nil {
					errs = append(errs, fmt.Errorf("store %q: %w", s.Name, err))
					continue
				}
				fmt.Fprintf(a.env.Stdout, "store %s: created bucket %s\n", s.Name, s.Bucket)
			} else if err != nil {
				errs = append(errs, fmt.Errorf("store %q: %w", s.Name, err))
				continue
			}
		}
		if _, err := store.Open(ctx, b); err == nil {
			fmt.Fprintf(a.env.Stdout, "store %s: repository already initialised at %s\n", s.Name, b.Location())
			continue
		} else if !errors.Is(err, store.ErrNoRepository) {
			errs = append(errs, fmt.Errorf("store %q: %w", s.Name, err))
			continue
		}
		if _, err := store.Init(ctx, b); err != nil {
			errs = append(errs, fmt.Errorf("store %q: %w", s.Name, err))
			continue
		}
		fmt.Fprintf(a.env.Stdout, "store %s: created repository at %s\n", s.Name, b.Location())
	}
	return errors.Join(errs...)
}
