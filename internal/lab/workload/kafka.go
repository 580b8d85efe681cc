package workload

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"

	"github.com/twmb/franz-go/pkg/kfake"
)

func runKafka(ctx context.Context, ports []int, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("kafka", flag.ContinueOnError)
	fs.SetOutput(out)
	var topics stringList
	fs.Var(&topics, "topic", "topic to create at start (repeatable); others are created on first use")
	partitions := fs.Int("partitions", 1, "partitions of each topic")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if len(ports) == 0 {
		return fmt.Errorf("no port to listen on")
	}
	ip, err := podIPv4()
	if err != nil {
		return err
	}
	// The broker advertises the address it listens on: the Pod's own, so
	// clients in other Pods can follow the metadata it returns.
	onPodIP := func(network, address string) (net.Listener, error) {
		_, port, err := net.SplitHostPort(address)
		if err != nil {
			return nil, err
		}
		return net.Listen(network, net.JoinHostPort(ip.String(), port))
	}
	opts := []kfake.Opt{
		kfake.NumBrokers(len(ports)), kfake.Ports(ports...), kfake.ListenFn(onPodIP),
		kfake.AllowAutoTopicCreation(), kfake.DefaultNumPartitions(*partitions),
	}
	if len(topics) > 0 {
		opts = append(opts, kfake.SeedTopics(int32(*partitions), topics...))
	}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		return fmt.Errorf("starting the Kafka broker: %w", err)
	}
	fmt.Fprintf(out, "kafka: broker serving on %v\n", c.ListenAddrs())
	<-ctx.Done()
	c.Close()
	return nil
}

type stringList []string

func (s *stringList) String() string     { return fmt.Sprint([]string(*s)) }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }
