package model

// AuthKey names one authenticated relation, as the auth manager proved it
// with a handshake. Local is the identity on this node, Remote the peer's,
// RemoteNode the node it lives on (0 for this node).
type AuthKey struct {
	Local      Identity
	Remote     Identity
	RemoteNode uint16
	Type       AuthType
}
