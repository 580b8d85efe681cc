package testbed

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/nodemesh/nodemesh/datapath/internal/nsrun"
)

// netnsDir is where iproute2 keeps named namespaces; using it makes every
// bed visible to `ip netns` for debugging.
const netnsDir = "/run/netns"

// Namespace is a named network namespace created by the test bed.
type Namespace struct {
	Name string
	Path string
}

// NewNamespace creates a named network namespace with loopback up.
func NewNamespace(name string) (*Namespace, error) {
	if err := os.MkdirAll(netnsDir, 0o755); err != nil {
		return nil, fmt.Errorf("creating %s: %w", netnsDir, err)
	}
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		return nil, fmt.Errorf("reading current network namespace: %w", err)
	}
	defer orig.Close()
	h, err := netns.NewNamed(name)
	if rerr := netns.Set(orig); rerr != nil {
		// The thread is stuck in the new namespace: keep it locked so
		// the runtime retires it with this goroutine.
		return nil, fmt.Errorf("returning from network namespace %s: %w", name, rerr)
	}
	runtime.UnlockOSThread()
	if err != nil {
		return nil, fmt.Errorf("creating network namespace %s: %w", name, err)
	}
	h.Close()
	ns := &Namespace{Name: name, Path: filepath.Join(netnsDir, name)}
	err = ns.Netlink(func(nl *netlink.Handle) error {
		lo, err := nl.LinkByName("lo")
		if err != nil {
			return err
		}
		return nl.LinkSetUp(lo)
	})
	if err != nil {
		_ = ns.Delete()
		return nil, fmt.Errorf("bringing up loopback in %s: %w", name, err)
	}
	return ns, nil
}

// Delete removes the namespace's name (and its EtcDir, if any). The
// kernel frees the namespace (and every interface in it) once no socket
// or process uses it any more; KillAll first makes sure no process does.
func (n *Namespace) Delete() error {
	if err := netns.DeleteNamed(n.Name); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("deleting network namespace %s: %w", n.Name, err)
	}
	if err := os.RemoveAll(n.EtcDir()); err != nil {
		return fmt.Errorf("removing %s: %w", n.EtcDir(), err)
	}
	return nil
}

// Do runs fn on a thread inside the namespace (see nsrun).
func (n *Namespace) Do(fn func() error) error { return nsrun.Do(n.Path, fn) }

// Netlink runs fn with a netlink handle bound to the namespace.
func (n *Namespace) Netlink(fn func(*netlink.Handle) error) error {
	h, err := netns.GetFromPath(n.Path)
	if err != nil {
		return fmt.Errorf("opening network namespace %s: %w", n.Name, err)
	}
	defer h.Close()
	nl, err := netlink.NewHandleAt(h)
	if err != nil {
		return fmt.Errorf("opening netlink in %s: %w", n.Name, err)
	}
	defer nl.Close()
	return fn(nl)
}

// Listen opens a listener inside the namespace.
func (n *Namespace) Listen(network, address string) (net.Listener, error) {
	var l net.Listener
	err := n.Do(func() error {
		var err error
		l, err = net.Listen(network, address)
		return err
	})
	return l, err
}

// Dial connects from inside the namespace.
func (n *Namespace) Dial(ctx context.Context, network, address string) (net.Conn, error) {
	return n.DialWith(ctx, &net.Dialer{}, network, address)
}

// DialWith connects from inside the namespace with the given dialer.
func (n *Namespace) DialWith(ctx context.Context, d *net.Dialer, network, address string) (net.Conn, error) {
	var c net.Conn
	err := n.Do(func() error {
		var err error
		c, err = d.DialContext(ctx, network, address)
		return err
	})
	return c, err
}

// Command prepares a command running inside the namespace.
func (n *Namespace) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", n.Name, name}, args...)...)
}

// Run runs a command inside the namespace and returns its combined output;
// the error includes that output.
func (n *Namespace) Run(ctx context.Context, name string, args ...string) (string, error) {
	out, err := n.Command(ctx, name, args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s %s in %s: %w: %s", name, strings.Join(args, " "), n.Name, err, out)
	}
	return string(out), nil
}

// Sysctl writes a sysctl of the namespace (key in dotted form).
func (n *Namespace) Sysctl(key, value string) error {
	path := "/proc/sys/" + strings.ReplaceAll(key, ".", "/")
	return n.Do(func() error {
		if err := os.WriteFile(path, []byte(value), 0o644); err != nil {
			return fmt.Errorf("setting %s=%s in %s: %w", key, value, n.Name, err)
		}
		return nil
	})
}

func openNS(n *Namespace) (netns.NsHandle, error) {
	h, err := netns.GetFromPath(n.Path)
	if err != nil {
		return 0, fmt.Errorf("opening network namespace %s: %w", n.Name, err)
	}
	return h, nil
}
