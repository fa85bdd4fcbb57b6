//go:build !unix

package dispatch

import "net"

// peerClosed cannot look without reading here: a close by the peer shows on the next request,
// which is then sent again on a new connection (see attemptScope.roundTrip).
func peerClosed(net.Conn) bool { return false }
