package container

import (
	"errors"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

func TestMountError(t *testing.T) {
	tests := []struct {
		err  error
		want string
	}{
		{mountErr(specs.Mount{Destination: "/data", Type: "bind", Source: "/srv/data", Options: []string{"rbind", "ro", "rslave"}}, unix.ENOENT),
			"mount /data: bind /srv/data, flags ro,bind,rec,slave: no such file or directory"},
		{mountErr(specs.Mount{Destination: "/tmp", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "size=1m"}}, unix.EPERM),
			"mount /tmp: tmpfs, flags nosuid: operation not permitted"},
		{mountErr(specs.Mount{Destination: "/proc", Type: "proc"}, unix.EBUSY),
			"mount /proc: proc: device or resource busy"},
		// Options that do not parse give no flags: the cause says why.
		{mountErr(specs.Mount{Destination: "/x", Type: "bind", Source: "/y", Options: []string{"rro"}}, errors.New(`mount option "rro" is not supported`)),
			`mount /x: bind /y: mount option "rro" is not supported`},
		{&MountError{Target: "/", Flags: unix.MS_SLAVE | unix.MS_REC, Err: unix.EINVAL},
			"mount /: flags rec,slave: invalid argument"},
		{&MountError{Target: "/m", Flags: unix.MS_RDONLY | 1<<30, Err: unix.EINVAL},
			"mount /m: flags ro,0x40000000: invalid argument"},
	}
	for _, tt := range tests {
		if got := tt.err.Error(); got != tt.want {
			t.Errorf("Error() = %q, want %q", got, tt.want)
		}
		var me *MountError
		if !errors.As(tt.err, &me) || errors.Unwrap(tt.err) != me.Err {
			t.Errorf("%v: not a *MountError unwrapping to its cause", tt.err)
		}
	}
}
