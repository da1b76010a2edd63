package main

import (
	"context"
	"errors"
)

func cmdRun(ctx context.Context, a *app, args []string) error {
	return errors.New("run: not built yet")
}
