package main

import (
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// runNATSServer is the hidden `nats-server` subcommand: one NATS server
// with JetStream, joined by routes to the others of a -cluster run. The
// tool runs each server as a process of its own (this same binary), so
// that its CPU and memory are measured apart from the tool's, as an
// external NATS cluster's would be. It prints "listening URL" on stdout
// once it accepts clients; JetStream elects its leader afterwards, which
// a Presence node waits for by itself.
func runNATSServer(args []string) error {
	fs := flag.NewFlagSet("nats-server", flag.ContinueOnError)
	name := fs.String("name", "nats1", "server name")
	port := fs.Int("port", 0, "client port on 127.0.0.1")
	clusterPort := fs.Int("cluster-port", 0, "route port on 127.0.0.1")
	routes := fs.String("routes", "", "comma-separated nats-route:// URLs of every server (its own is skipped)")
	store := fs.String("store", "", "JetStream store folder")
	profPort := fs.Int("prof-port", 0, "the Go profiler on 127.0.0.1:PORT (/debug/pprof/), 0 for none")
	lifetime := fs.Duration("lifetime", 2*time.Hour, "exit after this long, whatever happens")
	watchStdin := fs.Bool("watch-stdin", false, "exit when stdin closes (set by the tool that spawns it)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *port == 0 || *clusterPort == 0 || *store == "" {
		return fmt.Errorf("-port, -cluster-port and -store are required")
	}
	if _, err := raiseFileLimit(); err != nil {
		fmt.Fprintln(os.Stderr, "nats-server: cannot raise file limit:", err)
	}
	var others []string
	self := fmt.Sprintf(":%d", *clusterPort)
	for _, r := range strings.Split(*routes, ",") {
		if r = strings.TrimSpace(r); r != "" && !strings.HasSuffix(r, self) {
			others = append(others, r)
		}
	}
	s, err := server.NewServer(&server.Options{
		ServerName:         *name,
		Host:               "127.0.0.1",
		Port:               *port,
		JetStream:          true,
		StoreDir:           *store,
		JetStreamMaxMemory: 256 << 20,
		JetStreamMaxStore:  4 << 30,
		Cluster:            server.ClusterOpts{Name: "presence-bench", Host: "127.0.0.1", Port: *clusterPort},
		Routes:             server.RoutesFromStr(strings.Join(others, ",")),
		ProfPort:           *profPort,
		NoLog:              true,
		NoSigs:             true,
	})
	if err != nil {
		return err
	}
	go s.Start()
	if !s.ReadyForConnections(30 * time.Second) {
		s.Shutdown()
		return fmt.Errorf("%s did not accept clients within 30 s", *name)
	}
	fmt.Printf("listening nats://127.0.0.1:%d\n", *port)
	ctx, cancel := childContext(*watchStdin, *lifetime)
	defer cancel()
	<-ctx.Done()
	s.Shutdown()
	s.WaitForShutdown()
	return nil
}
