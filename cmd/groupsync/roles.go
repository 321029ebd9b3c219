package main

import (
	"context"
)

// runServe implements `groupsync serve`.
func runServe(ctx context.Context, e env, args []string) error {
	cfg, err := parseServe(e, args)
	if err != nil {
		return err
	}
	return runMain(ctx, cfg, nil, nil)
}

// runWorker implements `groupsync worker`.
func runWorker(ctx context.Context, e env, args []string) error {
	cfg, err := parseWorkerRole(e, args)
	if err != nil {
		return err
	}
	return runMain(ctx, cfg, nil, nil)
}

// runEmulator implements `groupsync emulator`.
func runEmulator(ctx context.Context, e env, args []string) error {
	cfg, err := parseEmulator(e, args)
	if err != nil {
		return err
	}
	return runMain(ctx, cfg, nil, nil)
}

// runMain opens a Main for cfg, calls started once every part runs, waits
// for ctx to end or a part to stop on its own, calls stopping, and closes
// it. started and stopping may be nil.
func runMain(ctx context.Context, cfg Config, started func(*Main) error, stopping func()) error {
	m := &Main{Config: cfg}
	err := m.Open(ctx)
	if err == nil && started != nil {
		err = started(m)
	}
	if err == nil {
		select {
		case <-ctx.Done():
		case err = <-m.Err():
		}
	}
	if stopping != nil {
		stopping()
	}
	if cerr := m.Close(); err == nil {
		err = cerr
	}
	return err
}
