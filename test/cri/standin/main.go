// Command standin is two programs of the CRI tests' images (test/cri),
// made offline, chosen by the name it is run as:
//
//   - pause: the pod sandbox's process, as Kubernetes' pause: it holds the
//     pod's namespaces, reaps what is reparented to it when it is pid 1 of
//     a shared pid namespace, and exits on SIGINT or SIGTERM;
//   - nginx: a stand-in for nginx as critest looks at it: a process named
//     nginx, whose command line says "master process" (its first
//     argument), with its pid in /var/run/nginx.pid, that serves /www
//     over HTTP on the port of its second argument (default 80) through a
//     busybox httpd child.
package main

import (
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
)

func main() {
	sigs := make(chan os.Signal, 16)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	var child *os.Process
	if filepath.Base(os.Args[0]) == "nginx" {
		var err error
		if child, err = startWebServer(); err != nil {
			fmt.Fprintln(os.Stderr, "nginx stand-in:", err)
			os.Exit(1)
		}
	}
	for s := range sigs {
		if s != syscall.SIGCHLD {
			if child != nil {
				child.Kill()
			}
			os.Exit(0)
		}
		for {
			var ws syscall.WaitStatus
			pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
			if child != nil && pid == child.Pid {
				os.Exit(1) // the web server died: so does the stand-in
			}
		}
	}
}

// startWebServer writes the pid file and starts busybox httpd in the
// foreground, as a child this process reaps.
func startWebServer() (*os.Process, error) {
	port := "80"
	if len(os.Args) > 2 {
		port = os.Args[2]
	}
	if err := os.WriteFile("/var/run/nginx.pid", []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
		return nil, err
	}
	cmd := exec.Command("/bin/httpd", "-f", "-p", port, "-h", "/www")
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	return cmd.Process, nil
}
