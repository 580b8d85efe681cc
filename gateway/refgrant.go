package gateway

import (
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// grantKey is one (from, to) pair a ReferenceGrant permits. toName is
// empty when the grant covers every object of the kind.
type grantKey struct {
	fromGroup, fromKind, fromNamespace string
	toNamespace, toGroup, toKind       string
	toName                             string
}

func (ix *index) addGrant(g *gwv1.ReferenceGrant) {
	for _, f := range g.Spec.From {
		for _, t := range g.Spec.To {
			name := ""
			if t.Name != nil {
				name = string(*t.Name)
			}
			ix.grants[grantKey{
				fromGroup: string(f.Group), fromKind: string(f.Kind), fromNamespace: string(f.Namespace),
				toNamespace: g.Namespace, toGroup: string(t.Group), toKind: string(t.Kind), toName: name,
			}] = true
		}
	}
}

// ref is one cross-object reference to check against ReferenceGrants.
type ref struct {
	fromGroup, fromKind, fromNamespace string
	toGroup, toKind, toNamespace       string
	toName                             string
}

// permitted reports whether a reference may be followed: same-namespace
// references always may, others only when a ReferenceGrant in the target
// namespace allows them.
func (ix *index) permitted(r ref) bool {
	if r.fromNamespace == r.toNamespace {
		return true
	}
	k := grantKey{
		fromGroup: r.fromGroup, fromKind: r.fromKind, fromNamespace: r.fromNamespace,
		toNamespace: r.toNamespace, toGroup: r.toGroup, toKind: r.toKind, toName: r.toName,
	}
	if ix.grants[k] {
		return true
	}
	k.toName = ""
	return ix.grants[k]
}
