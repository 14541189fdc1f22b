// Package rawfile reads and writes the kernel's small files (cgroup
// controls, /proc entries) with plain system calls.
//
// os.Open tries every file on the runtime's poller first, and kernfs and
// procfs files can be polled: two fcntls, two epoll_ctls and, for
// os.ReadFile, an fstat besides the open, the read or write and the
// close. A create writes a dozen cgroup files and a delete reads some;
// on machines where a system call is dear that is worth avoiding.
package rawfile
