package lab

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// The chart's security contexts become the flags of the chart's promise:
// the speaker as root with NET_ADMIN and NET_RAW only, the controller as
// 65532 with nothing, both read-only with no privilege escalation.
func TestSecurityFlagsOfTheChart(t *testing.T) {
	bin := repoBinaries(t)
	objs, err := RenderChart(bin.Helm, bin.Chart, ChartRelease, ChartNamespace, "--set", "memberlist.key=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{
		"DaemonSet": {"--user", "0:0", "--cap-drop", "ALL", "--cap-add", "NET_RAW", "--cap-add", "NET_ADMIN",
			"--read-only", "--read-only-tmpfs=false", "--security-opt", "no-new-privileges"},
		"Deployment": {"--user", "65532:65532", "--cap-drop", "ALL", "--read-only", "--read-only-tmpfs=false", "--security-opt", "no-new-privileges"},
	}
	for _, o := range objs {
		var tmpl corev1.PodTemplateSpec
		switch o.GetKind() {
		case "DaemonSet":
			var d appsv1.DaemonSet
			err = runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, &d)
			tmpl = d.Spec.Template
		case "Deployment":
			var d appsv1.Deployment
			err = runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, &d)
			tmpl = d.Spec.Template
		default:
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		sec, err := securityFlags(tmpl.Spec, tmpl.Spec.Containers[0])
		if err != nil {
			t.Fatalf("%s: %v", o.GetKind(), err)
		}
		if diff := cmp.Diff(want[o.GetKind()], sec.flags); diff != "" {
			t.Errorf("%s: podman flags (-want +got):\n%s", o.GetKind(), diff)
		}
		delete(want, o.GetKind())
	}
	if len(want) > 0 {
		t.Errorf("the chart rendered no %v", want)
	}
}

func TestSecurityFlags(t *testing.T) {
	yes, no := true, false
	uid, root := int64(1000), int64(0)
	for _, tc := range []struct {
		name    string
		pod     *corev1.PodSecurityContext
		c       *corev1.SecurityContext
		want    []string
		wantUID int
		wantErr string
	}{
		{name: "nothing set: the image's user, podman's defaults", wantUID: -1},
		{name: "the container's user wins over the pod's", pod: &corev1.PodSecurityContext{RunAsUser: &root}, c: &corev1.SecurityContext{RunAsUser: &uid},
			want: []string{"--user", "1000:1000"}, wantUID: 1000},
		{name: "escalation allowed", c: &corev1.SecurityContext{AllowPrivilegeEscalation: &yes, ReadOnlyRootFilesystem: &no}, wantUID: -1},
		{name: "unconfined", c: &corev1.SecurityContext{SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeUnconfined}},
			want: []string{"--security-opt", "seccomp=unconfined"}, wantUID: -1},
		{name: "privileged", c: &corev1.SecurityContext{Privileged: &yes}, wantErr: "containers[x].securityContext.privileged"},
		{name: "non-root as root", pod: &corev1.PodSecurityContext{RunAsNonRoot: &yes, RunAsUser: &root}, wantErr: "runAsNonRoot with runAsUser 0"},
		{name: "non-root, no user", c: &corev1.SecurityContext{RunAsNonRoot: &yes}, wantErr: "runAsNonRoot with runAsUser unset"},
		{name: "sysctls", pod: &corev1.PodSecurityContext{Sysctls: []corev1.Sysctl{{Name: "net.ipv4.ip_forward", Value: "1"}}}, wantErr: "spec.securityContext"},
		{name: "localhost seccomp", c: &corev1.SecurityContext{SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeLocalhost}}, wantErr: "seccompProfile.type Localhost"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sec, err := securityFlags(corev1.PodSpec{SecurityContext: tc.pod}, corev1.Container{Name: "x", SecurityContext: tc.c})
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one with %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, sec.flags); diff != "" {
				t.Errorf("flags (-want +got):\n%s", diff)
			}
			if sec.uid != tc.wantUID {
				t.Errorf("uid %d, want %d", sec.uid, tc.wantUID)
			}
		})
	}
}
