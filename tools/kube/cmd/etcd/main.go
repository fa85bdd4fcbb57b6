// Command etcd runs a single-member etcd for tests: one client URL, one
// peer URL and a data directory, nothing else. scripts/kube builds it from
// the etcd version k8s.io/kubernetes pins, so the API server and its store
// always agree.
//
// Usage: etcd -data-dir DIR -listen-client-urls URL -listen-peer-urls URL
package main

import (
	"flag"
	"fmt"
	"net/url"
	"os"
	"os/signal"
	"syscall"

	"go.etcd.io/etcd/server/v3/embed"
)

func main() {
	dir := flag.String("data-dir", "", "data directory (required)")
	client := flag.String("listen-client-urls", "http://127.0.0.1:2379", "client URL")
	peer := flag.String("listen-peer-urls", "http://127.0.0.1:2380", "peer URL")
	flag.Parse()
	if err := run(*dir, *client, *peer); err != nil {
		fmt.Fprintln(os.Stderr, "etcd:", err)
		os.Exit(1)
	}
}

func run(dir, client, peer string) error {
	if dir == "" {
		return fmt.Errorf("-data-dir is required")
	}
	cu, err := url.Parse(client)
	if err != nil {
		return fmt.Errorf("-listen-client-urls %q: %w", client, err)
	}
	pu, err := url.Parse(peer)
	if err != nil {
		return fmt.Errorf("-listen-peer-urls %q: %w", peer, err)
	}
	cfg := embed.NewConfig()
	cfg.Dir = dir
	cfg.Name = "eventgate-test"
	cfg.ListenClientUrls = []url.URL{*cu}
	cfg.AdvertiseClientUrls = []url.URL{*cu}
	cfg.ListenPeerUrls = []url.URL{*pu}
	cfg.AdvertisePeerUrls = []url.URL{*pu}
	cfg.InitialCluster = cfg.Name + "=" + pu.String()
	cfg.LogLevel = "warn"
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return fmt.Errorf("start: %w", err)
	}
	defer e.Close()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	select {
	case <-e.Server.ReadyNotify():
		fmt.Fprintln(os.Stderr, "etcd: ready on", client)
	case err := <-e.Err():
		return err
	case <-sig:
		return nil
	}
	select {
	case err := <-e.Err():
		return err
	case <-sig:
		return nil
	}
}
