package main

import (
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// checkPolicy holds a workload's pod template to the hardening the chart promises:
// non-root, read-only root filesystem, no privilege escalation, all
// capabilities dropped, RuntimeDefault seccomp, no service-link variables (envconfig
// would read them), probes and resources on every container.
func checkPolicy(obj runtime.Object) []error {
	var spec *corev1.PodSpec
	switch o := obj.(type) {
	case *appsv1.StatefulSet:
		spec = &o.Spec.Template.Spec
	case *appsv1.Deployment:
		spec = &o.Spec.Template.Spec
	case *corev1.Pod:
		spec = &o.Spec
	default:
		return nil
	}
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf("policy: "+format, a...)) }
	if spec.EnableServiceLinks == nil || *spec.EnableServiceLinks {
		bad("enableServiceLinks must be false")
	}
	psc := spec.SecurityContext
	if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot {
		bad("pod securityContext.runAsNonRoot must be true")
	}
	if psc == nil || psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		bad("pod securityContext.seccompProfile.type must be RuntimeDefault")
	}
	if psc != nil && psc.RunAsUser != nil && *psc.RunAsUser == 0 {
		bad("pod securityContext.runAsUser must not be 0")
	}
	for _, c := range spec.Containers {
		sc := c.SecurityContext
		switch {
		case sc == nil:
			bad("container %s: no securityContext", c.Name)
			continue
		case sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem:
			bad("container %s: readOnlyRootFilesystem must be true", c.Name)
		case sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation:
			bad("container %s: allowPrivilegeEscalation must be false", c.Name)
		case sc.Privileged != nil && *sc.Privileged:
			bad("container %s: privileged", c.Name)
		case sc.RunAsUser != nil && *sc.RunAsUser == 0:
			bad("container %s: runAsUser must not be 0", c.Name)
		}
		if sc.Capabilities == nil || !dropsAll(sc.Capabilities.Drop) || len(sc.Capabilities.Add) > 0 {
			bad("container %s: capabilities must drop ALL and add none", c.Name)
		}
		if c.LivenessProbe == nil || c.ReadinessProbe == nil {
			bad("container %s: needs liveness and readiness probes", c.Name)
		}
		if len(c.Resources.Requests) == 0 {
			bad("container %s: needs resource requests", c.Name)
		}
	}
	return errs
}

func dropsAll(caps []corev1.Capability) bool {
	for _, c := range caps {
		if c == "ALL" {
			return true
		}
	}
	return false
}
