// Command sysno makes the raw system calls it is given and prints
// "CALL=ERRNO" for each (ERRNO is "0" on success). A call is its number,
// then optionally its first arguments, separated by colons ("121:1337" is
// getpgid(1337)); the arguments not given are 0. The parity tests run it
// under a seccomp profile to see what the filter answers.
package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
)

func main() {
	for _, a := range os.Args[1:] {
		var v [7]uintptr
		fields := strings.Split(a, ":")
		if len(fields) > len(v) {
			fmt.Fprintf(os.Stderr, "%s: more than 6 arguments\n", a)
			os.Exit(2)
		}
		for i, f := range fields {
			n, err := strconv.ParseUint(f, 10, 64)
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(2)
			}
			v[i] = uintptr(n)
		}
		_, _, e := syscall.RawSyscall6(v[0], v[1], v[2], v[3], v[4], v[5], v[6])
		fmt.Printf("%s=%d\n", a, int(e))
	}
}
