package translator

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"

	"google.golang.org/protobuf/proto"

	"github.com/nodemesh/nodemesh/mesh/ir"
)

// Versions (see "Versions" in doc.go). Every resource is a function of a
// few IR objects and of this program, so its version is a hash of their
// content hashes (ir.Hash), of the few other inputs the build reads (a
// virtual host's domains as emitted, the invalid-backend cluster name),
// and of programSalt. Nothing is marshalled to version a resource.

// programSalt is part of every version. It is random per process: a new
// build of the translator may emit different resources for the same IR,
// and a proxy that reconnects to a restarted agent must not be told that
// what it holds is current because the IR is. The cost is that proxies
// receive everything again after the agent restarts.
var programSalt = func() (s [16]byte) {
	if _, err := rand.Read(s[:]); err != nil {
		panic("reading randomness for version salts: " + err.Error())
	}
	return s
}()

// version composes a version from parts. The zero value is ready.
type version struct{ buf []byte }

func (v *version) start(kind string) *version {
	v.buf = append(v.buf[:0], programSalt[:]...)
	return v.str(kind)
}

func (v *version) str(s string) *version {
	v.buf = binary.AppendUvarint(v.buf, uint64(len(s)))
	v.buf = append(v.buf, s...)
	return v
}

func (v *version) hash(h ir.Hash) *version {
	v.buf = append(v.buf, h[:]...)
	return v
}

func (v *version) uint(n uint64) *version {
	v.buf = binary.AppendUvarint(v.buf, n)
	return v
}

func (v *version) bool(b bool) *version {
	if b {
		return v.uint(1)
	}
	return v.uint(0)
}

// sum is the composed hash, for composing further.
func (v *version) sum() ir.Hash {
	full := sha256.Sum256(v.buf)
	return ir.Hash(full[:16])
}

// versionString renders a version as resources carry it.
func versionString(h ir.Hash) string { return hex.EncodeToString(h[:]) }

// Version returns the version of a resource of r: its content version,
// as the translator derived it from the IR. It returns "" for a resource
// the translator did not emit (one a caller put into r), which the xDS
// server then versions by its serialized form.
func (r *Resources) Version(m proto.Message) string {
	if v, ok := r.clusterVersions[m]; ok {
		return v
	}
	return r.versions[m]
}

// emit records the version of an emitted resource.
func (b *builder) emit(m proto.Message, version string) {
	b.out.versions[m] = version
}
