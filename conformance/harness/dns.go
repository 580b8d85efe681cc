package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"strings"

	"golang.org/x/net/dns/dnsmessage"
)

// dnsStandIn is what the node runner runs for the coredns image of the
// conformance base manifests (used only by UDPRoute tests, which nodemesh
// does not claim). It reads the Corefile and answers the zones that use
// the whoami plugin the way whoami does (an A record with the client's
// address); every other query is refused. It never forwards anywhere, so
// the Corefile's upstream resolvers are never contacted.
func dnsStandIn(args []string) error {
	fs := flag.NewFlagSet("dns-standin", flag.ContinueOnError)
	conf := fs.String("conf", "Corefile", "Corefile to read")
	if err := fs.Parse(args); err != nil {
		return err
	}
	zones, port, err := whoamiZones(*conf)
	if err != nil {
		return err
	}
	pc, err := net.ListenPacket("udp", ":"+port)
	if err != nil {
		return fmt.Errorf("listening on udp :%s: %w", port, err)
	}
	fmt.Printf("dns stand-in: answering whoami for %v on udp :%s\n", zones, port)
	buf := make([]byte, 512)
	for {
		n, addr, err := pc.ReadFrom(buf)
		if err != nil {
			return fmt.Errorf("reading query: %w", err)
		}
		if resp, err := answer(buf[:n], addr, zones); err == nil {
			_, _ = pc.WriteTo(resp, addr)
		}
	}
}

// whoamiZones returns the zones of server blocks that use whoami, and the
// port of the first server block.
func whoamiZones(path string) ([]string, string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, "", fmt.Errorf("reading Corefile: %w", err)
	}
	defer f.Close()
	var zones []string
	port, current := "", ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case strings.HasSuffix(line, "{"):
			key := strings.TrimSpace(strings.TrimSuffix(line, "{"))
			zone, p, _ := strings.Cut(key, ":")
			if port == "" {
				port = p
			}
			current = strings.TrimSuffix(zone, ".") + "."
		case line == "whoami" && current != "":
			zones = append(zones, current)
		case line == "}":
			current = ""
		}
	}
	if port == "" {
		port = "53"
	}
	return zones, port, sc.Err()
}

func answer(q []byte, from net.Addr, zones []string) ([]byte, error) {
	var p dnsmessage.Parser
	h, err := p.Start(q)
	if err != nil {
		return nil, err
	}
	question, err := p.Question()
	if err != nil {
		return nil, err
	}
	rh := dnsmessage.Header{ID: h.ID, Response: true, Authoritative: true, RCode: dnsmessage.RCodeRefused}
	name := strings.ToLower(question.Name.String())
	served := false
	for _, z := range zones {
		if name == z || strings.HasSuffix(name, "."+z) {
			served = true
		}
	}
	if served {
		rh.RCode = dnsmessage.RCodeSuccess
	}
	b := dnsmessage.NewBuilder(nil, rh)
	b.EnableCompression()
	if err := b.StartQuestions(); err != nil {
		return nil, err
	}
	if err := b.Question(question); err != nil {
		return nil, err
	}
	ua, ok := from.(*net.UDPAddr)
	if served && ok && ua.IP.To4() != nil {
		if err := b.StartAdditionals(); err != nil {
			return nil, err
		}
		var a [4]byte
		copy(a[:], ua.IP.To4())
		if err := b.AResource(dnsmessage.ResourceHeader{Name: question.Name, Class: dnsmessage.ClassINET}, dnsmessage.AResource{A: a}); err != nil {
			return nil, err
		}
	} else if served && !ok {
		return nil, errors.New("unexpected client address")
	}
	return b.Finish()
}
