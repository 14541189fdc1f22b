package main

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"

	"github.com/crier-runtime/crier/protocol"
)

// safeSignals are the signals a generated kill may carry: their default
// action is to do nothing (or continue), so neither the container's init
// nor the driver's exec'd processes ("all":true) are affected.
var safeSignals = []int{17, 18, 23, 28} // SIGCHLD, SIGCONT, SIGURG, SIGWINCH

// gen makes request lines. Each worker has its own, with its own source.
type gen struct {
	r *rand.Rand
}

// valid returns a well-formed request that leaves the container running,
// in one of the spellings the protocol allows (field order, spaces, \r,
// unknown fields, escapes). It never returns subscribe.
func (g *gen) valid() []byte {
	var fields []string
	switch g.r.IntN(9) {
	case 0:
		fields = []string{`"op":"hello"`}
	case 1, 2:
		fields = []string{`"op":"state"`}
	case 3:
		fields = []string{`"op":"start"`}
	case 4:
		fields = []string{`"op":"delete"`}
		if g.r.IntN(2) == 0 {
			fields = append(fields, `"force":false`)
		}
	case 5:
		fields = []string{`"op":"kill"`, `"signal":` + strconv.Itoa(safeSignals[g.r.IntN(len(safeSignals))])}
		if g.r.IntN(2) == 0 {
			fields = append(fields, `"all":`+strconv.FormatBool(g.r.IntN(2) == 0))
		}
	case 6:
		// Without its descriptors: refused.
		fields = []string{`"op":"exec"`, `"files":` + strconv.Itoa(1+g.r.IntN(protocol.MaxExecFiles)), `"execId":"` + g.execID() + `"`}
	case 7:
		fields = []string{`"op":"adopt"`, `"files":1`}
	default:
		fields = []string{`"op":"` + g.pick(opNames) + `"`}
	}
	if g.r.IntN(4) == 0 {
		fields = append(fields, g.pick(extraFields))
	}
	g.r.Shuffle(len(fields), func(i, j int) { fields[i], fields[j] = fields[j], fields[i] })
	sep := ","
	if g.r.IntN(4) == 0 {
		sep = " , "
	}
	line := "{" + strings.Join(fields, sep) + "}"
	switch g.r.IntN(8) {
	case 0:
		line = "  " + line + " \t"
	case 1:
		line += "\r"
	}
	return []byte(line)
}

// opNames are ops and near-ops, for requests whose op is the point.
var opNames = []string{"hello", "state", "bogus", "HELLO", "State", "", "subscrib", "stat\\u0065", "h\\u0065llo", "exec", "adopt", "pause ", "resume\\u0000"}

// extraFields are fields a request may carry beside its own: unknown
// ones, which are ignored, and known ones of other ops.
var extraFields = []string{
	`"x":1`, `"unknown":{"a":[1,2,{"b":null}]}`, `"history":false`, `"since":3`,
	`"wait":true`, `"ignorePaused":true`, `"execId":"e1"`, `"pad":"` + strings.Repeat("p", 300) + `"`,
	`"nested":[[[[[[[[[[]]]]]]]]]]`, `"s":"\ud800\udc00\u2028"`, `"n":-1.5e308`,
}

func (g *gen) pick(s []string) string { return s[g.r.IntN(len(s))] }

func (g *gen) execID() string {
	switch g.r.IntN(6) {
	case 0:
		return ""
	case 1:
		return "-bad id/" + strconv.Itoa(g.r.IntN(100))
	case 2:
		return strings.Repeat("x", 240+g.r.IntN(20))
	default:
		return "fz" + strconv.Itoa(g.r.IntN(1000))
	}
}

// mutate returns a damaged copy of line: bits flipped, bytes replaced,
// inserted, deleted or repeated, pieces of other requests spliced in. The
// result may hold newlines, and so be several lines.
func (g *gen) mutate(line []byte) []byte {
	b := bytes.Clone(line)
	for n := 1 + g.r.IntN(4); n > 0; n-- {
		b = g.mutateOnce(b)
	}
	return b
}

var interesting = []byte("{}[]\":,\\\x00\xff\x7f\n\r\t 0-9eE.tfn\xc3\xe2\x80")

var tokens = []string{
	`"op":"state"`, `"signal":99999999999999999999`, `"signal":-9`, `"signal":9.0`, `"signal":"9"`,
	`"history":"yes"`, `"since":18446744073709551615`, `"since":-1`, `"files":0`, `"files":254`,
	`"force":true`, `"op":"delete"`, `"op":"pause"`, `"op":"resume"`, `"op":"kill"`, `"op":"subscribe"`,
	`null`, `[]`, `{}`, `"\u0000"`, `\u`, `"op":["state"]`, `"OP":"hello"`, `1e999`, `true`,
}

func (g *gen) mutateOnce(b []byte) []byte {
	if len(b) == 0 {
		return []byte(g.pick(tokens))
	}
	i := g.r.IntN(len(b) + 1)
	switch g.r.IntN(9) {
	case 0: // flip a bit
		if i < len(b) {
			b[i] ^= 1 << g.r.IntN(8)
		}
	case 1: // replace a byte
		if i < len(b) {
			b[i] = interesting[g.r.IntN(len(interesting))]
		}
	case 2: // insert a byte
		return insert(b, i, []byte{byte(g.r.IntN(256))})
	case 3: // delete a range
		j := min(len(b), i+1+g.r.IntN(8))
		return append(b[:min(i, len(b))], b[j:]...)
	case 4: // repeat a range
		j := min(len(b), i+1+g.r.IntN(16))
		return insert(b, i, bytes.Clone(b[min(i, len(b)):j]))
	case 5: // splice a token in
		return insert(b, i, []byte(g.pick(tokens)))
	case 6: // cut
		return b[:i]
	case 7: // deep nesting
		d := 1 + g.r.IntN(20000)
		return insert(b, i, append(bytes.Repeat([]byte("["), d), bytes.Repeat([]byte("]"), g.r.IntN(d+1))...))
	default: // a field of another request
		return insert(b, i, []byte(","+g.pick(tokens)))
	}
	return b
}

func insert(b []byte, i int, s []byte) []byte {
	out := make([]byte, 0, len(b)+len(s))
	out = append(out, b[:i]...)
	out = append(out, s...)
	return append(out, b[i:]...)
}

// garbage returns n random bytes, some of them newlines.
func (g *gen) garbage(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(g.r.IntN(256))
		if g.r.IntN(64) == 0 {
			b[i] = '\n'
		}
	}
	return b
}

// expectation is what the shim must answer to one line.
type expectation struct {
	tooLong bool   // a line over MaxLine: "line too long", then EOF
	sub     bool   // a subscribe: the connection becomes a stream
	ok      bool   // the reply's ok
	code    string // its code when not ok
}

// dangerous reports whether req, once the shim decodes it, would change
// the container: those are never sent (the lines that would decode so are
// spoiled first, see neuter).
func dangerous(req protocol.Request) bool {
	switch req.Op {
	case protocol.OpPause, protocol.OpResume:
		return true
	case protocol.OpDelete:
		return req.Force
	case protocol.OpKill:
		for _, s := range safeSignals {
			if req.Signal == s {
				return false
			}
		}
		return true
	}
	return false
}

// expect says what the shim answers to line (without its newline), sent
// without descriptors: the shim's own decoder is the oracle, and the
// answer to each op is known since the container stays running. It
// returns the line to send instead when line would change the container.
func expect(line []byte) ([]byte, expectation) {
	if len(line)+1 > protocol.MaxLine {
		return line, expectation{tooLong: true}
	}
	req, err := protocol.DecodeRequest(line)
	if err == nil && dangerous(req) {
		// Spoiled: '#' can begin no JSON value.
		line = append([]byte{'#'}, line...)
		if len(line)+1 > protocol.MaxLine {
			line = line[:protocol.MaxLine-1]
		}
		req, err = protocol.DecodeRequest(line)
	}
	if err != nil {
		return line, expectation{code: "bad_request"}
	}
	switch req.Op {
	case protocol.OpHello, protocol.OpState, protocol.OpKill:
		return line, expectation{ok: true}
	case protocol.OpSubscribe:
		return line, expectation{sub: true, ok: true}
	case protocol.OpStart, protocol.OpDelete:
		return line, expectation{code: "invalid_state"}
	case protocol.OpExec, protocol.OpAdopt:
		// No descriptors came with it.
		return line, expectation{code: "bad_request"}
	}
	panic(fmt.Sprintf("no expectation for op %q", req.Op))
}
