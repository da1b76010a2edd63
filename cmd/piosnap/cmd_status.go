package main

import (
	"context"
	"errors"
)

func cmdStatus(ctx context.Context, a *app, args []string) error {
	return errors.New("status: not built yet")
}
