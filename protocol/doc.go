// Package protocol is crier's shim protocol: the wire types, the
// newline-delimited JSON codec and a Go client.
//
// Every crier container has one shim, which listens on a Unix stream socket
// in the container's state directory (ROOT/ID/shim.sock). A client writes one
// JSON request per line and reads one JSON reply per line, in order:
//
//	client                              shim
//	{"op":"state"}              ---->
//	                            <----   {"ok":true,"state":{...}}
//	{"op":"start"}              ---->
//	                            <----   {"ok":true}
//	{"op":"subscribe"}          ---->
//	                            <----   {"ok":true,"protocol":1}
//	                            <----   {"type":"created","seq":1,...}
//	                            <----   {"type":"started","seq":2,...}
//	                            <----   ...
//	                            <----   {"type":"deleted","seq":4,...}
//	                            <----   EOF
//
// After a successful subscribe the connection carries only events; the shim
// closes it after "deleted", or after an error line when the subscriber
// falls too far behind. docs/protocol.md is the full description for clients
// in other languages.
//
// A failed request gets a reply with a message for people and a code for
// programs. In Go the code is a kind of error (ErrInvalidState, ErrNotExist,
// ...) that errors.Is finds on both sides of the socket: errors.go has the
// kinds and the one table that maps them to codes and back.
package protocol
