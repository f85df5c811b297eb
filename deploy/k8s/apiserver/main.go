// Command apiserver is a real Kubernetes API server and the etcd it stores in, built from
// the Go module proxy, for `kubectl apply --dry-run=server` of deploy/k8s's overlays in the
// tests (tests/deploy/test_k8s_apiserver.py). One binary, two commands:
//
//	apiserver etcd --data-dir DIR --client-url http://127.0.0.1:P --peer-url http://127.0.0.1:Q
//	apiserver kube-apiserver FLAGS...   (kube-apiserver's own flags, unchanged)
//
// Neither kwok, envtest nor k3s can be used here (they download binaries), and
// k8s.io/kubernetes cannot be `go install`ed (its staging modules are replace directives):
// this module requires it with every k8s.io staging module replaced by its published release.
package main

import (
	"flag"
	"fmt"
	"net/url"
	"os"
	"os/signal"
	"syscall"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
	"k8s.io/component-base/cli"
	"k8s.io/kubernetes/cmd/kube-apiserver/app"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: apiserver etcd|kube-apiserver [flags]")
		os.Exit(2)
	}
	command, args := os.Args[1], os.Args[2:]
	switch command {
	case "etcd":
		os.Exit(etcd(args))
	case "kube-apiserver":
		os.Args = append([]string{"kube-apiserver"}, args...)
		os.Exit(cli.Run(app.NewAPIServerCommand()))
	default:
		fmt.Fprintf(os.Stderr, "apiserver: unknown command %q\n", command)
		os.Exit(2)
	}
}

// etcd runs a one-member etcd (go.etcd.io/etcd/server/v3/embed) until SIGTERM or SIGINT.
func etcd(args []string) int {
	flags := flag.NewFlagSet("etcd", flag.ExitOnError)
	dir := flags.String("data-dir", "", "where etcd keeps its data")
	client := flags.String("client-url", "http://127.0.0.1:2379", "URL clients reach etcd at")
	peer := flags.String("peer-url", "http://127.0.0.1:2380", "URL of the (only) member")
	_ = flags.Parse(args)
	clientURL, err := url.Parse(*client)
	if err != nil {
		return fail(err)
	}
	peerURL, err := url.Parse(*peer)
	if err != nil {
		return fail(err)
	}
	cfg := embed.NewConfig()
	cfg.Dir = *dir
	cfg.ListenClientUrls = []url.URL{*clientURL}
	cfg.AdvertiseClientUrls = []url.URL{*clientURL}
	cfg.ListenPeerUrls = []url.URL{*peerURL}
	cfg.AdvertisePeerUrls = []url.URL{*peerURL}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	cfg.LogLevel = "warn"
	server, err := embed.StartEtcd(cfg)
	if err != nil {
		return fail(err)
	}
	defer server.Close()
	select {
	case <-server.Server.ReadyNotify():
		fmt.Println("etcd ready at", clientURL)
	case <-time.After(60 * time.Second):
		return fail(fmt.Errorf("etcd not ready within 60 s"))
	}
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	select {
	case <-stop:
		return 0
	case err := <-server.Err():
		return fail(err)
	}
}

func fail(err error) int {
	fmt.Fprintln(os.Stderr, "etcd:", err)
	return 1
}
