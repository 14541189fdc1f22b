// Command sysno makes the raw system calls whose numbers it is given, all
// arguments 0, and prints "NR=ERRNO" for each (ERRNO is "0" on success):
// parity_seccomp_enosys_test.go runs it under a seccomp profile to see
// what the filter answers, before the kernel would look at the arguments.
package main

import (
	"fmt"
	"os"
	"strconv"
	"syscall"
)

func main() {
	for _, a := range os.Args[1:] {
		nr, err := strconv.ParseUint(a, 10, 32)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		_, _, e := syscall.RawSyscall6(uintptr(nr), 0, 0, 0, 0, 0, 0)
		fmt.Printf("%d=%d\n", nr, int(e))
	}
}
