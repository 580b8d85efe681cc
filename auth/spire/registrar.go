package spire

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	entryv1 "github.com/spiffe/spire-api-sdk/proto/spire/api/server/entry/v1"
	"github.com/spiffe/spire-api-sdk/proto/spire/api/types"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"

	"github.com/nodemesh/nodemesh/auth"
)

// batchSize bounds the entries of one BatchCreateEntry/BatchDeleteEntry
// call and the page size of ListEntries, so no request or answer grows
// with the number of identities.
const batchSize = 200

// Registrar keeps the SPIRE server's registration entries for identities
// in line with the identities that exist: one entry per identity and
// parent, SPIFFE ID spiffe://<td>/identity/<n>, the nodemesh selector. It
// needs admin access to the server's Entry API (see doc.go for who runs
// it). It is safe for concurrent use, but Syncs of the same parent should
// not overlap.
type Registrar struct {
	entries    entryv1.EntryClient
	td         spiffeid.TrustDomain
	selector   Selector
	ttl        int32
	maxEntries int
	log        *slog.Logger
}

// Changes is what one Sync did.
type Changes struct {
	Created, Updated, Deleted int
}

// NewRegistrar returns a Registrar using conn, a connection to the SPIRE
// server's API with admin rights: its local socket (DialServer), or TCP
// with an admin X.509-SVID.
func NewRegistrar(conn grpc.ClientConnInterface, td spiffeid.TrustDomain, opts ...Option) (*Registrar, error) {
	if td.IsZero() {
		return nil, errors.New("creating SPIRE registrar: trust domain required")
	}
	o := buildOptions(opts)
	if o.selector.Type == "" || o.selector.Value == "" {
		return nil, fmt.Errorf("creating SPIRE registrar: selector %q: want type:value", o.selector)
	}
	ttl := o.svidTTL.Round(time.Second) / time.Second
	if ttl < 0 || ttl > math.MaxInt32 || o.maxEntries < 1 {
		return nil, errors.New("creating SPIRE registrar: SVID lifetime and entry limit out of range")
	}
	return &Registrar{entries: entryv1.NewEntryClient(conn), td: td, selector: o.selector, ttl: int32(ttl),
		maxEntries: o.maxEntries, log: o.log}, nil
}

// DialServer connects to a SPIRE server's local API socket (socket_path
// in the server's configuration), where every caller is an admin. The
// caller closes the connection.
func DialServer(socket string) (*grpc.ClientConn, error) {
	return dialUnix(socket, DefaultMaxMessageSize)
}

// Sync makes the entries under parent that carry the Registrar's selector
// exactly one per identity in ids: it creates the missing, deletes those
// of identities not in ids and duplicates, and corrects lifetimes. Entries
// under parent with the selector whose SPIFFE ID is not an identity of the
// trust domain are left alone (not ours). parent is the node alias of the
// node that hosts ids (per-node layout) or an alias every agent resolves
// to (cluster-wide layout); see doc.go. Every batch is attempted; the
// error joins what failed, and a retry of Sync finishes the job.
func (r *Registrar) Sync(ctx context.Context, parent spiffeid.ID, ids []auth.Identity) (Changes, error) {
	var ch Changes
	if !parent.MemberOf(r.td) {
		return ch, fmt.Errorf("syncing SPIRE entries: parent %q is not in trust domain %s", parent, r.td)
	}
	want := map[auth.Identity]bool{}
	for _, id := range ids {
		if id == 0 {
			return ch, fmt.Errorf("syncing SPIRE entries under %s: identity 0: %w", parent, auth.ErrNotIdentity)
		}
		want[id] = true
	}
	have, err := r.list(ctx, parent)
	if err != nil {
		return ch, fmt.Errorf("syncing SPIRE entries under %s: %w", parent, err)
	}
	var create []*types.Entry
	var update []*types.Entry
	var del []string
	for id := range want {
		es := have[id]
		if len(es) == 0 {
			create = append(create, r.entry(parent, id))
			continue
		}
		del = append(del, entryIDs(es[1:])...)
		if es[0].GetX509SvidTtl() != r.ttl {
			update = append(update, &types.Entry{Id: es[0].GetId(), X509SvidTtl: r.ttl})
		}
	}
	for id, es := range have {
		if !want[id] {
			del = append(del, entryIDs(es)...)
		}
	}
	// Stable order: deterministic batches, readable logs.
	slices.SortFunc(create, func(a, b *types.Entry) int {
		return strings.Compare(a.GetSpiffeId().GetPath(), b.GetSpiffeId().GetPath())
	})
	slices.Sort(del)
	var errs []error
	for b := range slices.Chunk(create, batchSize) {
		n, err := r.create(ctx, b)
		ch.Created += n
		errs = append(errs, err)
	}
	for b := range slices.Chunk(update, batchSize) {
		n, err := r.update(ctx, b)
		ch.Updated += n
		errs = append(errs, err)
	}
	for b := range slices.Chunk(del, batchSize) {
		n, err := r.delete(ctx, b)
		ch.Deleted += n
		errs = append(errs, err)
	}
	if ch != (Changes{}) {
		r.log.Info("synced SPIRE entries", "parent", parent, "identities", len(want), "created", ch.Created, "updated", ch.Updated, "deleted", ch.Deleted)
	}
	if err := errors.Join(errs...); err != nil {
		return ch, fmt.Errorf("syncing SPIRE entries under %s: %w", parent, err)
	}
	return ch, nil
}

func (r *Registrar) entry(parent spiffeid.ID, id auth.Identity) *types.Entry {
	sid, _ := auth.SPIFFEID(r.td, id) // id != 0, checked by Sync
	return &types.Entry{
		SpiffeId:    &types.SPIFFEID{TrustDomain: r.td.Name(), Path: sid.Path()},
		ParentId:    &types.SPIFFEID{TrustDomain: parent.TrustDomain().Name(), Path: parent.Path()},
		Selectors:   []*types.Selector{selectorProto(r.selector)},
		X509SvidTtl: r.ttl,
	}
}

// list reads the entries under parent with exactly our selector, grouped
// by identity.
func (r *Registrar) list(ctx context.Context, parent spiffeid.ID) (map[auth.Identity][]*types.Entry, error) {
	have := map[auth.Identity][]*types.Entry{}
	req := &entryv1.ListEntriesRequest{
		Filter: &entryv1.ListEntriesRequest_Filter{
			ByParentId: &types.SPIFFEID{TrustDomain: parent.TrustDomain().Name(), Path: parent.Path()},
			BySelectors: &types.SelectorMatch{
				Selectors: []*types.Selector{selectorProto(r.selector)},
				Match:     types.SelectorMatch_MATCH_EXACT,
			},
		},
		PageSize: batchSize,
	}
	seen := 0
	for {
		resp, err := r.entries.ListEntries(ctx, req)
		if err != nil {
			return nil, fmt.Errorf("listing entries: %w", err)
		}
		for _, e := range resp.GetEntries() {
			seen++
			if seen > r.maxEntries {
				return nil, fmt.Errorf("listing entries: more than %d", r.maxEntries)
			}
			// The filter is the server's to apply; an entry outside it
			// (a server that ignored it) must not be deleted as ours.
			if !r.ours(e, parent) {
				continue
			}
			id, ok := r.identityOf(e)
			if !ok {
				continue
			}
			have[id] = append(have[id], e)
		}
		if resp.GetNextPageToken() == "" || len(resp.GetEntries()) == 0 {
			return have, nil
		}
		req.PageToken = resp.GetNextPageToken()
	}
}

// ours says whether e has exactly the parent and the one selector Sync
// manages.
func (r *Registrar) ours(e *types.Entry, parent spiffeid.ID) bool {
	p := e.GetParentId()
	sels := e.GetSelectors()
	return p.GetTrustDomain() == parent.TrustDomain().Name() && p.GetPath() == parent.Path() &&
		len(sels) == 1 && sels[0].GetType() == r.selector.Type && sels[0].GetValue() == r.selector.Value
}

// identityOf says which identity an entry is for, if it is one of ours.
func (r *Registrar) identityOf(e *types.Entry) (auth.Identity, bool) {
	sid := e.GetSpiffeId()
	if sid.GetTrustDomain() != r.td.Name() || e.GetId() == "" {
		return 0, false
	}
	id, err := spiffeid.FromPath(r.td, sid.GetPath())
	if err != nil {
		return 0, false
	}
	ident, err := auth.IdentityOf(r.td, id)
	return ident, err == nil
}

func entryIDs(es []*types.Entry) []string {
	out := make([]string, 0, len(es))
	for _, e := range es {
		out = append(out, e.GetId())
	}
	return out
}

func (r *Registrar) create(ctx context.Context, es []*types.Entry) (int, error) {
	resp, err := r.entries.BatchCreateEntry(ctx, &entryv1.BatchCreateEntryRequest{Entries: es})
	if err != nil {
		return 0, fmt.Errorf("creating %d entries: %w", len(es), err)
	}
	var errs []error
	n := 0
	for i, res := range resp.GetResults() {
		switch codes.Code(res.GetStatus().GetCode()) {
		case codes.OK:
			n++
		case codes.AlreadyExists:
			// Another Sync got there first: the entry is what we want.
		default:
			name := "?"
			if i < len(es) {
				name = es[i].GetSpiffeId().GetPath()
			}
			errs = append(errs, fmt.Errorf("creating entry %s: %s: %s", name, codes.Code(res.GetStatus().GetCode()), res.GetStatus().GetMessage()))
		}
	}
	if len(resp.GetResults()) != len(es) {
		errs = append(errs, fmt.Errorf("creating %d entries: %d results", len(es), len(resp.GetResults())))
	}
	return n, errors.Join(errs...)
}

func (r *Registrar) update(ctx context.Context, es []*types.Entry) (int, error) {
	resp, err := r.entries.BatchUpdateEntry(ctx, &entryv1.BatchUpdateEntryRequest{
		Entries: es, InputMask: &types.EntryMask{X509SvidTtl: true},
	})
	if err != nil {
		return 0, fmt.Errorf("updating %d entries: %w", len(es), err)
	}
	var errs []error
	n := 0
	for _, res := range resp.GetResults() {
		if c := codes.Code(res.GetStatus().GetCode()); c != codes.OK {
			errs = append(errs, fmt.Errorf("updating entry %s: %s: %s", res.GetEntry().GetId(), c, res.GetStatus().GetMessage()))
			continue
		}
		n++
	}
	return n, errors.Join(errs...)
}

func (r *Registrar) delete(ctx context.Context, ids []string) (int, error) {
	resp, err := r.entries.BatchDeleteEntry(ctx, &entryv1.BatchDeleteEntryRequest{Ids: ids})
	if err != nil {
		return 0, fmt.Errorf("deleting %d entries: %w", len(ids), err)
	}
	var errs []error
	n := 0
	for _, res := range resp.GetResults() {
		switch c := codes.Code(res.GetStatus().GetCode()); c {
		case codes.OK:
			n++
		case codes.NotFound:
			// Deleted meanwhile: what we wanted.
		default:
			errs = append(errs, fmt.Errorf("deleting entry %s: %s: %s", res.GetId(), c, res.GetStatus().GetMessage()))
		}
	}
	return n, errors.Join(errs...)
}
