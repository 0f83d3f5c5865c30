package lab

import (
	"fmt"
	"strconv"

	corev1 "k8s.io/api/core/v1"
)

// podmanSecurity is what the lab gives podman to run a chart's container
// as the kubelet would run it.
type podmanSecurity struct {
	// flags are podman run's flags for the security context.
	flags []string
	// uid and gid own what the lab mounts into the container (its
	// kubeconfig): the container's user, -1 when the chart leaves it to
	// the image.
	uid, gid int
}

// securityFlags turns a pod's and its container's security context into
// podman run flags: the user and group, capabilities, a read-only root
// filesystem (without the writable /tmp podman would add: a pod gets none
// either), no privilege escalation, the seccomp profile. The container's
// settings win over the pod's, as in Kubernetes. Anything the lab cannot
// reproduce is an error naming the field, so a chart change that the lab
// would silently ignore is noticed.
func securityFlags(pod corev1.PodSpec, c corev1.Container) (podmanSecurity, error) {
	out := podmanSecurity{uid: -1, gid: -1}
	var user, group *int64
	var nonRoot *bool
	var seccomp *corev1.SeccompProfile
	if ps := pod.SecurityContext; ps != nil {
		if ps.SELinuxOptions != nil || ps.WindowsOptions != nil || ps.FSGroup != nil || ps.FSGroupChangePolicy != nil ||
			len(ps.SupplementalGroups) > 0 || len(ps.Sysctls) > 0 || ps.AppArmorProfile != nil {
			return out, fmt.Errorf("spec.securityContext: the lab reproduces only runAsUser, runAsGroup, runAsNonRoot and seccompProfile, not %+v", *ps)
		}
		user, group, nonRoot, seccomp = ps.RunAsUser, ps.RunAsGroup, ps.RunAsNonRoot, ps.SeccompProfile
	}
	cs := c.SecurityContext
	if cs == nil {
		cs = &corev1.SecurityContext{}
	}
	if cs.SELinuxOptions != nil || cs.WindowsOptions != nil || cs.ProcMount != nil || cs.AppArmorProfile != nil {
		return out, fmt.Errorf("containers[%s].securityContext: the lab cannot reproduce seLinuxOptions, windowsOptions, procMount or appArmorProfile", c.Name)
	}
	if cs.Privileged != nil && *cs.Privileged {
		return out, fmt.Errorf("containers[%s].securityContext.privileged: true; the lab runs ironlb unprivileged only", c.Name)
	}
	user, group, nonRoot, seccomp = or(cs.RunAsUser, user), or(cs.RunAsGroup, group), or(cs.RunAsNonRoot, nonRoot), or(cs.SeccompProfile, seccomp)
	if nonRoot != nil && *nonRoot && (user == nil || *user == 0) {
		return out, fmt.Errorf("containers[%s].securityContext: runAsNonRoot with runAsUser %s; the lab needs a non-zero runAsUser with runAsNonRoot", c.Name, show(user))
	}
	if user != nil {
		out.uid, out.gid = int(*user), int(*user)
		if group != nil {
			out.gid = int(*group)
		}
		out.flags = append(out.flags, "--user", strconv.Itoa(out.uid)+":"+strconv.Itoa(out.gid))
	} else if group != nil {
		return out, fmt.Errorf("containers[%s].securityContext.runAsGroup without runAsUser; the lab needs both or neither", c.Name)
	}
	if caps := cs.Capabilities; caps != nil {
		for _, d := range caps.Drop {
			out.flags = append(out.flags, "--cap-drop", string(d))
		}
		for _, a := range caps.Add {
			out.flags = append(out.flags, "--cap-add", string(a))
		}
	}
	if cs.ReadOnlyRootFilesystem != nil && *cs.ReadOnlyRootFilesystem {
		out.flags = append(out.flags, "--read-only", "--read-only-tmpfs=false")
	}
	if cs.AllowPrivilegeEscalation != nil && !*cs.AllowPrivilegeEscalation {
		out.flags = append(out.flags, "--security-opt", "no-new-privileges")
	}
	if seccomp != nil {
		switch seccomp.Type {
		case corev1.SeccompProfileTypeRuntimeDefault: // podman's default profile
		case corev1.SeccompProfileTypeUnconfined:
			out.flags = append(out.flags, "--security-opt", "seccomp=unconfined")
		default:
			return out, fmt.Errorf("containers[%s] seccompProfile.type %s: the lab reproduces RuntimeDefault and Unconfined", c.Name, seccomp.Type)
		}
	}
	return out, nil
}

func or[T any](first, second *T) *T {
	if first != nil {
		return first
	}
	return second
}

func show(p *int64) string {
	if p == nil {
		return "unset"
	}
	return strconv.FormatInt(*p, 10)
}
