package config

import corev1 "k8s.io/api/core/v1"

// Class says which Services ironlb handles: the controller assigns them
// addresses and the speakers announce them.
type Class struct {
	// Name is the loadBalancerClass handled.
	Name string
	// Require: Services without a class are not handled.
	Require bool
}

// Handles tells whether the Service is ironlb's to serve.
func (c Class) Handles(svc *corev1.Service) bool {
	if svc.Spec.Type != corev1.ServiceTypeLoadBalancer {
		return false
	}
	if svc.Spec.LoadBalancerClass == nil {
		return !c.Require
	}
	return *svc.Spec.LoadBalancerClass == c.Name
}
