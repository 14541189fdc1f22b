package container

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/crier-runtime/crier/container/seccomp"
	"github.com/crier-runtime/crier/internal/jsondec"
)

// ErrInvalidID is wrapped by ValidateID's errors.
var ErrInvalidID = errors.New("invalid container ID")

// MaxIDLength leaves room in a 255-byte file name.
const MaxIDLength = 250

// validIDChars reports whether id has only letters, digits and _.+- and
// starts with a letter or digit. (Hand-written rather than a regexp: every
// shim links this package, and a compiled regexp is resident heap.)
func validIDChars(id string) bool {
	for i, c := range []byte(id) {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case i > 0 && (c == '_' || c == '.' || c == '+' || c == '-'):
		default:
			return false
		}
	}
	return id != ""
}

// isSemVer reports whether v is MAJOR.MINOR.PATCH with an optional
// -prerelease and +build of [0-9A-Za-z.-].
func isSemVer(v string) bool {
	core, build, _ := strings.Cut(v, "+")
	core, pre, hasPre := strings.Cut(core, "-")
	nums := strings.Split(core, ".")
	if len(nums) != 3 || (hasPre && !semverIdent(pre)) || (strings.Contains(v, "+") && !semverIdent(build)) {
		return false
	}
	for _, n := range nums {
		if n == "" || (len(n) > 1 && n[0] == '0') || strings.Trim(n, "0123456789") != "" {
			return false
		}
	}
	return true
}

func semverIdent(s string) bool {
	return s != "" && strings.Trim(s, "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-") == ""
}

// ValidateID checks that id is usable as a file name and is not surprising
// in a shell: letters, digits and _ . + - , starting with a letter or digit.
func ValidateID(id string) error {
	switch {
	case id == "":
		return fmt.Errorf("%w: empty", ErrInvalidID)
	case len(id) > MaxIDLength:
		return fmt.Errorf("%w: longer than %d characters", ErrInvalidID, MaxIDLength)
	case !validIDChars(id):
		return fmt.Errorf("%w %q: use letters, digits and _.+- and start with a letter or digit", ErrInvalidID, id)
	}
	return nil
}

// LoadSpec reads and validates bundle/config.json.
func LoadSpec(bundle string) (*specs.Spec, error) {
	spec, _, err := LoadSpecJSON(bundle)
	return spec, err
}

// LoadSpecJSON is LoadSpec that also returns the file's bytes, which
// Create can hand to the init stage as they are (Config.SpecJSON).
func LoadSpecJSON(bundle string) (*specs.Spec, []byte, error) {
	path := filepath.Join(bundle, "config.json")
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("bundle: %w", err)
	}
	spec, err := ParseSpec(b, path)
	if err != nil {
		return nil, nil, err
	}
	return spec, b, nil
}

// ParseSpec decodes and validates a config read from path (named in its
// errors): a bundle's, or the one the state directory recorded at create.
func ParseSpec(b []byte, path string) (*specs.Spec, error) {
	var ls linuxSpec
	if err := jsondec.Unmarshal(b, &ls); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if err := Validate(&ls.Spec); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &ls.Spec, nil
}

// linuxSpec decodes a config without the sections of other platforms.
// Configs are decoded with internal/jsondec, which looks only at the types
// the document reaches; where it leaves a config to encoding/json, that
// builds its encoders for every type a struct can reach the first time it
// decodes into it, whether the document has those fields or not, and the
// Windows, Solaris, VM and z/OS type trees are a good part of the
// runtime-spec's. Their keys land here, shadowing the embedded fields, and
// are never looked at.
type linuxSpec struct {
	specs.Spec
	Solaris json.RawMessage `json:"solaris,omitempty"`
	Windows json.RawMessage `json:"windows,omitempty"`
	VM      json.RawMessage `json:"vm,omitempty"`
	ZOS     json.RawMessage `json:"zos,omitempty"`
}

// Validate checks what can be checked of a spec before anything is
// created, so that a bad config fails with a clear error and leaves nothing
// behind.
func Validate(spec *specs.Spec) error {
	if spec.Version == "" {
		return errors.New("ociVersion is missing")
	}
	if !isSemVer(spec.Version) {
		return fmt.Errorf("ociVersion %q is not a SemVer version", spec.Version)
	}
	if spec.Root == nil || spec.Root.Path == "" {
		return errors.New("root.path is missing")
	}
	if spec.Linux == nil {
		return errors.New("linux section is missing")
	}
	if err := validateNamespaces(spec.Linux.Namespaces); err != nil {
		return err
	}
	if err := validateSysctls(spec.Linux); err != nil {
		return err
	}
	if err := validateTimeNamespace(spec.Linux); err != nil {
		return err
	}
	if err := validateProcessExtras(spec); err != nil {
		return err
	}
	if err := seccomp.Validate(spec.Linux.Seccomp); err != nil {
		return err
	}
	for i, m := range spec.Mounts {
		if !filepath.IsAbs(m.Destination) {
			return fmt.Errorf("mounts[%d]: destination %q is not absolute", i, m.Destination)
		}
		if _, err := mountIDMapping(m, HasNamespace(spec, specs.UserNamespace)); err != nil {
			return fmt.Errorf("mount %s: %w", m.Destination, err)
		}
	}
	if spec.Process != nil {
		if err := validateProcess(spec.Process); err != nil {
			return fmt.Errorf("process: %w", err)
		}
	}
	return nil
}

var namespaceTypes = map[specs.LinuxNamespaceType]bool{
	specs.PIDNamespace: true, specs.NetworkNamespace: true, specs.MountNamespace: true,
	specs.IPCNamespace: true, specs.UTSNamespace: true, specs.UserNamespace: true,
	specs.CgroupNamespace: true, specs.TimeNamespace: true,
}

func validateNamespaces(nss []specs.LinuxNamespace) error {
	seen := map[specs.LinuxNamespaceType]bool{}
	for _, ns := range nss {
		if !namespaceTypes[ns.Type] {
			return fmt.Errorf("linux.namespaces: unknown type %q", ns.Type)
		}
		if seen[ns.Type] {
			// runc refuses it too, as a "malformed spec file: duplicated ns".
			return fmt.Errorf("linux.namespaces: malformed spec file: duplicated ns %q", ns.Type)
		}
		seen[ns.Type] = true
	}
	return nil
}

// HasNamespace reports whether spec asks for a namespace of type t, new
// or joined.
func HasNamespace(spec *specs.Spec, t specs.LinuxNamespaceType) bool {
	return hasNamespaceIn(spec.Linux, t)
}

// OwnPidNamespace reports whether the container gets a new pid namespace
// (listed without a path), whose init takes every other process of it
// along when it dies; otherwise (the host's, or one it joins) its processes
// outlive the init, and only the cgroup finds them all.
func OwnPidNamespace(spec *specs.Spec) bool { return ownNamespace(spec, specs.PIDNamespace) }

// ownNamespace reports whether the container has a namespace of type t
// made for it (listed without a path), not one it joins.
func ownNamespace(spec *specs.Spec, t specs.LinuxNamespaceType) bool {
	if spec.Linux == nil {
		return false
	}
	for _, ns := range spec.Linux.Namespaces {
		if ns.Type == t {
			return ns.Path == ""
		}
	}
	return false
}

// RootfsPath returns the absolute root filesystem path of a bundle.
func RootfsPath(bundle string, spec *specs.Spec) string {
	if filepath.IsAbs(spec.Root.Path) {
		return filepath.Clean(spec.Root.Path)
	}
	return filepath.Join(bundle, spec.Root.Path)
}

// SpecLoad is a config being decoded and validated in the background, so
// that the caller can fork init (Create) meanwhile: the full decode is a
// good part of a create, and init's start-up needs only a little of the
// config (Early).
type SpecLoad struct {
	// JSON is the file's bytes, for the init stage (Config.SpecJSON).
	JSON []byte
	// Early holds what forking init and claiming the ID need (see
	// earlySpec), or is nil when the quick look found the config unusable:
	// then only Wait can say what is wrong with it. Nothing in Early has
	// been validated; Wait's error comes first.
	Early *specs.Spec

	done chan struct{}
	spec *specs.Spec
	err  error
	// netns is a network namespace being made for init (netNSAhead).
	netns *netNSAhead
	// exe is the sealed init binary being made (UseExe), or nil.
	exe exeAhead
}

// UseExe gives the load the sealed init binary being made (SealExeAhead),
// for Create to fork init from; Release drops it.
func (l *SpecLoad) UseExe(e *ExeAhead) {
	l.exe = e.a
}

// takeExe hands the sealed init binary given to UseExe, if any, to
// the caller, who waits for it or drops it.
func (l *SpecLoad) takeExe() exeAhead {
	a := l.exe
	l.exe = nil
	return a
}

// StartLoadSpec reads bundle/config.json and starts decoding and
// validating it in the background (Wait). It also makes the new network
// namespace the config asks for, if it can be made ahead of the fork
// (wantNetNSAhead), unless there is a speculative init, which gets the
// config's bytes at once (SendSpec) and makes its own.
func StartLoadSpec(bundle string, spec *Speculative) (*SpecLoad, error) {
	path := filepath.Join(bundle, "config.json")
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("bundle: %w", err)
	}
	spec.SendSpec(b)
	netnsAhead := spec == nil
	netns := newNetNSAhead()
	l := &SpecLoad{JSON: b, done: make(chan struct{}), netns: netns}
	// The early part first, and only once: decoding it on both threads
	// at once (for the network namespace here sooner) cost a create CPU
	// that a busy machine does not have to spare, and the fork waits for
	// the namespace only after the cgroups are located.
	l.Early = parseEarly(b)
	ahead := netnsAhead && l.Early != nil && wantNetNSAhead(l.Early.Linux)
	go func() {
		defer close(l.done)
		if ahead {
			// Never unlocked: the thread is left in the new
			// network namespace, and the runtime discards it when
			// this ends. Only then: a locked goroutine costs a
			// hand-off of the P at each wait, and its thread's
			// exit another.
			runtime.LockOSThread()
		}
		netns.make(ahead)
		var ls linuxSpec
		if err := jsondec.Unmarshal(b, &ls); err != nil {
			l.err = fmt.Errorf("%s: %w", path, err)
			return
		}
		if err := Validate(&ls.Spec); err != nil {
			l.err = fmt.Errorf("%s: %w", path, err)
			return
		}
		l.spec = &ls.Spec
	}()
	return l, nil
}

// Release frees what the load holds for Create, when Create is not to be
// called.
func (l *SpecLoad) Release() {
	l.takeNetNS().close()
	if a := l.takeExe(); a != nil {
		a.drop()
	}
}

// takeNetNS hands the network namespace made ahead, if any, to the
// caller, who closes it.
func (l *SpecLoad) takeNetNS() *netNSAhead {
	n := l.netns
	l.netns = nil
	return n
}

// Wait returns the decoded, validated config, or why it is not usable:
// the same error LoadSpecJSON gives.
func (l *SpecLoad) Wait() (*specs.Spec, error) {
	<-l.done
	return l.spec, l.err
}

// earlySpec is the part of a config that Create needs to fork init (the
// namespaces and the cgroup placement and device rules) and the shim needs
// for its state file. Decoding only this skips the bulk of the config
// (process, mounts, hooks, seccomp) and most of the types encoding/json
// builds its caches for, at their first use in a process: the dearest
// part of a decode. linux.resources and linux.devices wait as raw JSON,
// to be decoded only as far as they have content (earlyResources).
type earlySpec struct {
	Root        *specs.Root       `json:"root"`
	Annotations map[string]string `json:"annotations"`
	Process     *struct {
		Terminal bool `json:"terminal"`
	} `json:"process"`
	Linux *struct {
		Namespaces  []specs.LinuxNamespace           `json:"namespaces"`
		UIDMappings []specs.LinuxIDMapping           `json:"uidMappings"`
		GIDMappings []specs.LinuxIDMapping           `json:"gidMappings"`
		TimeOffsets map[string]specs.LinuxTimeOffset `json:"timeOffsets"`
		CgroupsPath string                           `json:"cgroupsPath"`
		Resources   json.RawMessage                  `json:"resources"`
		Devices     json.RawMessage                  `json:"devices"`
	} `json:"linux"`
}

// parseEarly returns the earlySpec of a config as a Spec, or nil if the
// config is not even that far usable.
func parseEarly(b []byte) *specs.Spec {
	var e earlySpec
	if jsondec.Unmarshal(b, &e) != nil || e.Root == nil || e.Root.Path == "" || e.Linux == nil {
		return nil
	}
	l := &specs.Linux{
		Namespaces:  e.Linux.Namespaces,
		UIDMappings: e.Linux.UIDMappings,
		GIDMappings: e.Linux.GIDMappings,
		TimeOffsets: e.Linux.TimeOffsets,
		CgroupsPath: e.Linux.CgroupsPath,
	}
	var err error
	if l.Resources, err = earlyResources(e.Linux.Resources); err != nil {
		return nil
	}
	if len(e.Linux.Devices) > 0 && jsondec.Unmarshal(e.Linux.Devices, &l.Devices) != nil {
		return nil
	}
	spec := &specs.Spec{Root: e.Root, Annotations: e.Annotations, Linux: l}
	if e.Process != nil {
		spec.Process = &specs.Process{Terminal: e.Process.Terminal}
	}
	return spec
}

// earlyResources decodes linux.resources. The common one, nothing but
// device rules, is decoded without specs.LinuxResources, whose type tree
// alone costs encoding/json more than the rest of the early part.
func earlyResources(raw json.RawMessage) (*specs.LinuxResources, error) {
	if len(raw) == 0 {
		return nil, nil
	}
	var keys map[string]json.RawMessage
	if err := jsondec.Unmarshal(raw, &keys); err != nil {
		return nil, err
	}
	if keys == nil { // null
		return nil, nil
	}
	var r specs.LinuxResources
	for k := range keys {
		if k != "devices" {
			err := jsondec.Unmarshal(raw, &r)
			return &r, err
		}
	}
	if devices, ok := keys["devices"]; ok {
		if err := jsondec.Unmarshal(devices, &r.Devices); err != nil {
			return nil, err
		}
	}
	return &r, nil
}
