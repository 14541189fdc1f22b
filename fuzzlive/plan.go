package main

import (
	"bytes"

	"github.com/crier-runtime/crier/protocol"
)

// plan is a payload to send on one connection and the replies it must get.
type plan struct {
	send  []byte
	exps  []expectation // one per line the shim answers, in order
	lines int           // lines sent (complete or not): the requests
	// partial: the payload ends in the middle of a line (of this many
	// bytes); after SHUT_WR the shim answers it with "unexpected EOF"
	// unless it is over MaxLine.
	partial int
	// stream: a subscribe is among the lines; the shim answers nothing
	// after it. closed: a line over MaxLine is; the shim closes after it.
	stream, closed bool
}

// makePlan spoils the lines of payload that would change the container
// and says what each of the others gets.
func makePlan(payload []byte) *plan {
	p := &plan{}
	rest := payload
	for len(rest) > 0 {
		i := bytes.IndexByte(rest, '\n')
		if i < 0 {
			p.partial = len(rest)
			p.lines++
			if !p.stream && !p.closed && len(rest) <= protocol.MaxLine {
				// A partial line is decoded only if it is ever
				// completed; spoil it the same, in case.
				line, _ := expect(rest)
				rest = line
				p.partial = len(rest)
			}
			p.send = append(p.send, rest...)
			if !p.stream && !p.closed && len(rest) > protocol.MaxLine {
				// Too long already: answered without its end.
				p.exps = append(p.exps, expectation{tooLong: true})
				p.closed = true
			}
			break
		}
		line, exp := expect(rest[:i])
		rest = rest[i+1:]
		p.send = append(append(p.send, line...), '\n')
		p.lines++
		if p.stream || p.closed {
			continue
		}
		p.exps = append(p.exps, exp)
		p.stream, p.closed = exp.sub, exp.tooLong
	}
	return p
}
