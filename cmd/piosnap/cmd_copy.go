package main

import (
	"context"
	"errors"
)

func cmdCopy(ctx context.Context, a *app, args []string) error {
	return errors.New("copy: not built yet")
}
