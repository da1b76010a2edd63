package main

import (
	"context"
	"errors"
)

func cmdRestore(ctx context.Context, a *app, args []string) error {
	return errors.New("restore: not built yet")
}
