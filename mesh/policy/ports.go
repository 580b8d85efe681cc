package policy

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/nodemesh/nodemesh/datapath/model"
	"github.com/nodemesh/nodemesh/mesh/identity"
)

// portSpec is one entry of toPorts[].ports: a protocol (datapath number,
// ProtoAny for ANY) and a port range, or a named port.
type portSpec struct {
	proto uint8
	port  uint16 // 0: every port
	end   uint16 // last port of the range (== port for one port)
	name  string // a named container port instead of port/end
}

func parseProtocol(s string) (uint8, error) {
	switch strings.ToUpper(s) {
	case "", "ANY":
		return model.ProtoAny, nil
	case "TCP":
		return model.ProtoTCP, nil
	case "UDP":
		return model.ProtoUDP, nil
	case "SCTP":
		return model.ProtoSCTP, nil
	}
	return 0, fmt.Errorf("unsupported protocol %q (TCP, UDP, SCTP, ANY)", s)
}

func protoName(p uint8) string {
	switch p {
	case model.ProtoAny:
		return "ANY"
	case model.ProtoTCP:
		return "TCP"
	case model.ProtoUDP:
		return "UDP"
	case model.ProtoSCTP:
		return "SCTP"
	case model.ProtoICMP:
		return "ICMP"
	case model.ProtoICMPv6:
		return "ICMPv6"
	}
	return strconv.Itoa(int(p))
}

// parsePort reads a port field: a number (0 = all ports), or an IANA
// service name naming a container port.
func parsePort(port string, endPort int32, proto uint8) (portSpec, error) {
	ps := portSpec{proto: proto}
	if port == "" {
		port = "0"
	}
	n, err := strconv.ParseUint(port, 10, 16)
	switch {
	case err == nil:
		ps.port, ps.end = uint16(n), uint16(n)
	case validPortName(port):
		if endPort != 0 {
			return ps, fmt.Errorf("endPort: not allowed with the named port %q", port)
		}
		ps.name = strings.ToLower(port)
		return ps, nil
	default:
		return ps, fmt.Errorf("port: %q is neither a port number (0-65535) nor a port name", port)
	}
	if endPort != 0 {
		if ps.port == 0 {
			return ps, fmt.Errorf("endPort: %d given for port 0 (all ports)", endPort)
		}
		if endPort < int32(ps.port) || endPort > 65535 {
			return ps, fmt.Errorf("endPort: %d must be between port %d and 65535", endPort, ps.port)
		}
		ps.end = uint16(endPort)
	}
	return ps, nil
}

// validPortName accepts an IANA service name: 1-15 characters of [a-z0-9-]
// with at least one letter, not starting or ending with '-'.
func validPortName(s string) bool {
	if len(s) == 0 || len(s) > 15 || s[0] == '-' || s[len(s)-1] == '-' || strings.Contains(s, "--") {
		return false
	}
	letter := false
	for i := 0; i < len(s); i++ {
		c := s[i] | 0x20
		switch {
		case c >= 'a' && c <= 'z':
			letter = true
		case s[i] >= '0' && s[i] <= '9' || s[i] == '-':
		default:
			return false
		}
	}
	return letter
}

// l4 is one concrete datapath (protocol, port) key; port 0 means every
// port of the protocol, and ProtoAny only appears with port 0.
type l4 struct {
	proto uint8
	port  uint16
}

func (k l4) String() string {
	if k.port == 0 {
		return protoName(k.proto) + "/*"
	}
	return strconv.Itoa(int(k.port)) + "/" + protoName(k.proto)
}

// expand returns the concrete keys of a port spec. ANY with a port stands
// for TCP, UDP and SCTP (the datapath needs a protocol with a port);
// named ports resolve against the given container ports, matching the
// protocol unless it is ANY.
func (ps portSpec) expand(named []identity.NamedPort) []l4 {
	var protos []uint8
	if ps.proto == model.ProtoAny {
		if ps.port == 0 && ps.name == "" {
			return []l4{{model.ProtoAny, 0}}
		}
		protos = []uint8{model.ProtoTCP, model.ProtoUDP, model.ProtoSCTP}
	} else {
		protos = []uint8{ps.proto}
	}
	var out []l4
	if ps.name != "" {
		seen := map[l4]bool{}
		for _, np := range named {
			if np.Name != ps.name {
				continue
			}
			p, err := parseProtocol(np.Protocol)
			if err != nil {
				continue
			}
			for _, want := range protos {
				k := l4{want, np.Port}
				if want == p && !seen[k] {
					seen[k] = true
					out = append(out, k)
				}
			}
		}
		return out
	}
	for _, p := range protos {
		if ps.port == 0 {
			out = append(out, l4{p, 0})
			continue
		}
		for port := uint32(ps.port); port <= uint32(ps.end); port++ {
			out = append(out, l4{p, uint16(port)})
		}
	}
	return out
}

// width is how many concrete keys the spec can expand to at most (named
// ports count one per protocol).
func (ps portSpec) width() int {
	n := 1
	if ps.proto == model.ProtoAny && (ps.port != 0 || ps.name != "") {
		n = 3
	}
	if ps.name == "" && ps.port != 0 {
		n *= int(ps.end-ps.port) + 1
	}
	return n
}

// icmpTypes are the message names Cilium accepts in icmps[].fields[].type.
var icmpTypes = map[string]map[string]uint8{
	"IPv4": {
		"EchoReply": 0, "DestinationUnreachable": 3, "Redirect": 5, "Echo": 8, "EchoRequest": 8,
		"RouterAdvertisement": 9, "RouterSelection": 10, "TimeExceeded": 11, "ParameterProblem": 12,
		"Timestamp": 13, "TimestampReply": 14, "Photuris": 40, "ExtendedEchoRequest": 42, "ExtendedEchoReply": 43,
	},
	"IPv6": {
		"DestinationUnreachable": 1, "PacketTooBig": 2, "TimeExceeded": 3, "ParameterProblem": 4,
		"EchoRequest": 128, "EchoReply": 129, "MulticastListenerQuery": 130, "MulticastListenerReport": 131,
		"MulticastListenerDone": 132, "RouterSolicitation": 133, "RouterAdvertisement": 134,
		"NeighborSolicitation": 135, "NeighborAdvertisement": 136, "RedirectMessage": 137,
		"RouterRenumbering": 138, "ICMPNodeInformationQuery": 139, "ICMPNodeInformationResponse": 140,
		"InverseNeighborDiscoverySolicitation": 141, "InverseNeighborDiscoveryAdvertisement": 142,
		"HomeAgentAddressDiscoveryRequest": 144, "HomeAgentAddressDiscoveryReply": 145,
		"MobilePrefixSolicitation": 146, "MobilePrefixAdvertisement": 147,
		"DuplicateAddressRequestCodeSuffix": 157, "DuplicateAddressConfirmationCodeSuffix": 158,
		"ExtendedEchoRequest": 160, "ExtendedEchoReply": 161,
	},
}

// parseICMP reads one icmps field into a datapath key.
func parseICMP(family string, typ string, isString bool, num int32) (l4, error) {
	if family == "" {
		family = "IPv4"
	}
	names, ok := icmpTypes[family]
	if !ok {
		return l4{}, fmt.Errorf("family: unknown family %q (IPv4, IPv6)", family)
	}
	proto := model.ProtoICMP
	if family == "IPv6" {
		proto = model.ProtoICMPv6
	}
	var t uint8
	if isString {
		v, ok := names[typ]
		if !ok {
			return l4{}, fmt.Errorf("type: unknown %s message %q", family, typ)
		}
		t = v
	} else {
		if num < 0 || num > 255 {
			return l4{}, fmt.Errorf("type: %d out of range 0-255", num)
		}
		t = uint8(num)
	}
	if t == 0 {
		// Port 0 is the datapath's wildcard: an echo-reply rule would
		// allow every ICMP message. Replies pass connection tracking
		// anyway.
		return l4{}, fmt.Errorf("type: ICMP type 0 cannot be matched on its own (the datapath treats it as every type); replies to allowed echo requests pass anyway")
	}
	return l4{proto, uint16(t)}, nil
}
