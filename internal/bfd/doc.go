// Package bfd is Bidirectional Forwarding Detection (RFC 5880) over UDP,
// single hop (RFC 5881) and multihop (RFC 5883), in asynchronous mode:
// a packet codec (Parse, Packet.MarshalBinary), a pure per-session state
// machine (Machine) that is given the time and the packets and returns
// the packets to send, and Sessions, which runs the machines of every
// wanted peer on one goroutine over real sockets. See README.md.
package bfd
