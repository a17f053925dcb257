package main

import (
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"
)

// client-go carries no schema for custom resources, so the Prometheus operator kinds the
// chart renders are checked against these hand-written structs: an allow-list of the
// fields the chart uses (a subset of monitoring.coreos.com/v1), with their types. A field
// outside the list, or a value of the wrong type, fails. This does not prove the CRD
// installed in a cluster accepts the object, only that the chart writes what we meant.
var crds = map[string]func(j []byte) error{
	"monitoring.coreos.com/v1, Kind=ServiceMonitor": strictInto[serviceMonitor],
	"monitoring.coreos.com/v1, Kind=PrometheusRule": strictInto[prometheusRule],
}

func strictInto[T any](j []byte) error {
	var v T
	if err := yaml.UnmarshalStrict(j, &v); err != nil {
		return err
	}
	if c, ok := any(&v).(interface{ validate() error }); ok {
		return c.validate()
	}
	return nil
}

type serviceMonitor struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		JobLabel          string               `json:"jobLabel,omitempty"`
		Selector          metav1.LabelSelector `json:"selector"`
		NamespaceSelector *struct {
			Any        bool     `json:"any,omitempty"`
			MatchNames []string `json:"matchNames,omitempty"`
		} `json:"namespaceSelector,omitempty"`
		Endpoints []struct {
			Port              string              `json:"port,omitempty"`
			TargetPort        *intstr.IntOrString `json:"targetPort,omitempty"`
			Path              string              `json:"path,omitempty"`
			Scheme            string              `json:"scheme,omitempty"`
			Interval          string              `json:"interval,omitempty"`
			ScrapeTimeout     string              `json:"scrapeTimeout,omitempty"`
			HonorLabels       bool                `json:"honorLabels,omitempty"`
			Relabelings       []relabel           `json:"relabelings,omitempty"`
			MetricRelabelings []relabel           `json:"metricRelabelings,omitempty"`
		} `json:"endpoints"`
	} `json:"spec"`
}

type relabel struct {
	SourceLabels []string `json:"sourceLabels,omitempty"`
	Separator    string   `json:"separator,omitempty"`
	TargetLabel  string   `json:"targetLabel,omitempty"`
	Regex        string   `json:"regex,omitempty"`
	Modulus      int64    `json:"modulus,omitempty"`
	Replacement  *string  `json:"replacement,omitempty"`
	Action       string   `json:"action,omitempty"`
}

func (s *serviceMonitor) validate() error {
	if len(s.Spec.Endpoints) == 0 {
		return fmt.Errorf("spec.endpoints: at least one endpoint")
	}
	for i, e := range s.Spec.Endpoints {
		if e.Port == "" && e.TargetPort == nil {
			return fmt.Errorf("spec.endpoints[%d]: port or targetPort required", i)
		}
	}
	if len(s.Spec.Selector.MatchLabels) == 0 && len(s.Spec.Selector.MatchExpressions) == 0 {
		return fmt.Errorf("spec.selector: empty selector would scrape every Service")
	}
	return nil
}

type prometheusRule struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		Groups []struct {
			Name     string `json:"name"`
			Interval string `json:"interval,omitempty"`
			Rules    []struct {
				Alert         string            `json:"alert,omitempty"`
				Record        string            `json:"record,omitempty"`
				Expr          string            `json:"expr"`
				For           string            `json:"for,omitempty"`
				KeepFiringFor string            `json:"keep_firing_for,omitempty"`
				Labels        map[string]string `json:"labels,omitempty"`
				Annotations   map[string]string `json:"annotations,omitempty"`
			} `json:"rules"`
		} `json:"groups"`
	} `json:"spec"`
}

func (p *prometheusRule) validate() error {
	for i, g := range p.Spec.Groups {
		if g.Name == "" {
			return fmt.Errorf("spec.groups[%d].name required", i)
		}
		for j, r := range g.Rules {
			if (r.Alert == "") == (r.Record == "") {
				return fmt.Errorf("spec.groups[%d].rules[%d]: exactly one of alert or record", i, j)
			}
			if r.Expr == "" {
				return fmt.Errorf("spec.groups[%d].rules[%d].expr required", i, j)
			}
		}
	}
	return nil
}
