package main

import (
	"context"
	"errors"
)

func cmdRestore(ctx context.Context, a *app, args []string) error {
	return errors.New("restore: not built yet")
}

func cmdCopy(ctx context.Context, a *app, args []string) error {
	return errors.New("copy: not built yet")
}

func cmdRun(ctx context.Context, a *app, args []string) error {
	return errors.New("run: not built yet")
}

func cmdStatus(ctx context.Context, a *app, args []string) error {
	return errors.New("status: not built yet")
}
