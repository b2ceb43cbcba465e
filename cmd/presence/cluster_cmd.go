package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"

	"github.com/nats-io/nats.go/jetstream"
)

// runCluster is `presence cluster forget-secrets`: it deletes the
// recorded fingerprints, so that the next node to start records its own
// (docs/cluster.md, "Changing the shared secrets").
func runCluster(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "forget-secrets" {
		fmt.Fprintln(stderr, "usage: presence cluster forget-secrets [-config presence.toml] [--json]")
		return errors.New("cluster: want forget-secrets")
	}
	var c common
	fs := newFlags("cluster forget-secrets", stderr, &c)
	if _, err := parseInterspersed(fs, args[1:]); err != nil {
		return err
	}
	cfg, err := c.load()
	if err != nil {
		return err
	}
	if !cfg.Clustered() {
		return errors.New("cluster forget-secrets: cluster.nats_url is not set: one node keeps its secrets in its data folder and checks nothing")
	}
	fmt.Fprintf(stderr, "presence: NATS %s\n", cfg.Cluster.NATSURL)
	log := slog.New(slog.NewTextHandler(stderr, nil))
	nc, err := connectNATS(cfg, log, &linkWatch{})
	if err != nil {
		return err
	}
	defer nc.Close()
	ctx, cancel := context.WithTimeout(ctx, secretsTimeout)
	defer cancel()
	kv, err := secretsKV(ctx, nc, cfg.Cluster.Replicas, false)
	forgot := true
	switch {
	case errors.Is(err, jetstream.ErrBucketNotFound):
		forgot = false // no node has started yet
	case err != nil:
		return err
	default:
		if err := kv.Purge(ctx, secretsKey); err != nil {
			return fmt.Errorf("cluster.nats_url: forget the fingerprints: %w", err)
		}
	}
	if c.json {
		return printJSON(stdout, map[string]bool{"forgotten": forgot})
	}
	if forgot {
		fmt.Fprintln(stdout, "forgot the cluster's secret fingerprints: the next node to start records its own; running nodes go on with theirs")
	} else {
		fmt.Fprintln(stdout, "no fingerprints recorded yet: nothing to forget")
	}
	return nil
}
