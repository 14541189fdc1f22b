package protocol

import (
	"fmt"
	"strconv"
	"strings"
)

// JoinArgs packs a list of strings into one string of printable ASCII
// without JSON escapes, so that a request carrying it stays on the shim's
// flat scanner (scanRequest): each string is percent-encoded (a byte
// outside '!'..'~', and '%', '"' and '\', become %XX) and they are joined
// by spaces. SplitArgs undoes it.
func JoinArgs(args []string) string {
	var b strings.Builder
	for i, a := range args {
		if i > 0 {
			b.WriteByte(' ')
		}
		if a == "" {
			b.WriteString("%")
			continue
		}
		for j := 0; j < len(a); j++ {
			c := a[j]
			if c <= ' ' || c > '~' || c == '%' || c == '"' || c == '\\' {
				fmt.Fprintf(&b, "%%%02X", c)
				continue
			}
			b.WriteByte(c)
		}
	}
	return b.String()
}

// SplitArgs is the inverse of JoinArgs; "" is no strings.
func SplitArgs(s string) ([]string, error) {
	if s == "" {
		return nil, nil
	}
	var args []string
	for f := range strings.SplitSeq(s, " ") {
		if f == "%" {
			args = append(args, "")
			continue
		}
		var b strings.Builder
		for i := 0; i < len(f); i++ {
			if f[i] != '%' {
				b.WriteByte(f[i])
				continue
			}
			if i+3 > len(f) {
				return nil, Errorf(ErrBadRequest, "malformed argument list %q", s)
			}
			v, err := strconv.ParseUint(f[i+1:i+3], 16, 8)
			if err != nil {
				return nil, Errorf(ErrBadRequest, "malformed argument list %q", s)
			}
			b.WriteByte(byte(v))
			i += 2
		}
		args = append(args, b.String())
	}
	return args, nil
}
