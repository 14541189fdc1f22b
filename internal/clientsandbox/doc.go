// Package clientsandbox writes what a private sandbox of podman or
// containerd needs on this kind of host: their configuration files, and an
// offline image of the busybox rootfs that `ctr image import` takes. The
// client tests (test/clients) and the benchmark (bench) share it, so that
// both drive the clients the same way.
package clientsandbox
