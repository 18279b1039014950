package main

import (
	"context"
	"errors"
)

func runGen(ctx context.Context, e *env, args []string) error {
	return errors.New("gen: not implemented yet")
}
