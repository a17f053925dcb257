// Command k8scheck validates rendered Kubernetes manifests (for example `helm template`
// output) offline, against the API schemas compiled into client-go, so that CI needs no
// cluster and no network (kubeconform would download its schemas).
//
//	helm template ... | k8scheck [-policy] [FILE ...]
//
// Every document must pass, or k8scheck exits 1 and names each problem:
//   - built-in kinds: strict decoding (unknown or duplicate fields, wrong types) and the
//     structured-merge-diff schema check (the one the API server's field manager runs);
//   - the Prometheus operator CRDs the chart renders (ServiceMonitor, PrometheusRule): a
//     strict decode into hand-written structs holding only the fields we allow (crd.go);
//     client-go has no schema for them;
//   - any other kind is an error: nothing is skipped silently.
//
// With -policy, pod templates must also meet the chart's hardening rules (policy.go).
package main

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/util/managedfields"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/applyconfigurations"
	"k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/yaml"
)

func main() {
	policy := flag.Bool("policy", false, "also check pod templates against the hardening policy")
	quiet := flag.Bool("q", false, "print only problems")
	flag.Parse()
	c := newChecker(*policy)
	inputs := flag.Args()
	if len(inputs) == 0 {
		inputs = []string{"-"}
	}
	var problems []string
	total := 0
	for _, name := range inputs {
		docs, err := readDocs(name)
		if err != nil {
			fmt.Fprintf(os.Stderr, "k8scheck: %s: %v\n", name, err)
			os.Exit(1)
		}
		for _, d := range docs {
			total++
			id, errs := c.check(d)
			for _, e := range errs {
				problems = append(problems, fmt.Sprintf("%s: %s: %v", name, id, e))
			}
			if len(errs) == 0 && !*quiet {
				fmt.Printf("ok   %s\n", id)
			}
		}
	}
	for _, p := range problems {
		fmt.Fprintf(os.Stderr, "FAIL %s\n", p)
	}
	if total == 0 {
		fmt.Fprintln(os.Stderr, "k8scheck: no documents")
		os.Exit(1)
	}
	if len(problems) > 0 {
		fmt.Fprintf(os.Stderr, "k8scheck: %d problem(s) in %d document(s)\n", len(problems), total)
		os.Exit(1)
	}
	fmt.Printf("k8scheck: %d document(s) valid\n", total)
}

// readDocs splits a multi-document YAML stream and drops empty documents (helm emits
// some for templates whose feature is off).
func readDocs(name string) ([][]byte, error) {
	var r io.Reader = os.Stdin
	if name != "-" {
		f, err := os.Open(name)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		r = f
	}
	yr := utilyaml.NewYAMLReader(bufio.NewReader(r))
	var docs [][]byte
	for {
		d, err := yr.Read()
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			return nil, err
		}
		if len(bytes.TrimSpace(stripComments(d))) == 0 {
			continue
		}
		docs = append(docs, d)
	}
}

func stripComments(d []byte) []byte {
	var out []byte
	for _, l := range bytes.Split(d, []byte("\n")) {
		if t := bytes.TrimSpace(l); len(t) > 0 && t[0] != '#' {
			out = append(out, l...)
			out = append(out, '\n')
		}
	}
	return out
}

type checker struct {
	policy  bool
	decoder runtime.Decoder
	tc      managedfields.TypeConverter
}

func newChecker(policy bool) *checker {
	return &checker{
		policy:  policy,
		decoder: serializer.NewCodecFactory(scheme.Scheme, serializer.EnableStrict).UniversalDeserializer(),
		tc:      applyconfigurations.NewTypeConverter(scheme.Scheme),
	}
}

// check returns "Kind/name" and the problems of one document.
func (c *checker) check(doc []byte) (string, []error) {
	var u unstructured.Unstructured
	j, err := yaml.YAMLToJSONStrict(doc)
	if err != nil {
		return "?", []error{fmt.Errorf("not YAML: %w", err)}
	}
	if err := u.UnmarshalJSON(j); err != nil {
		return "?", []error{fmt.Errorf("not a Kubernetes object: %w", err)}
	}
	id := u.GetKind() + "/" + u.GetName()
	var errs []error
	if u.GetName() == "" {
		errs = append(errs, errors.New("metadata.name is empty"))
	}
	gvk := u.GroupVersionKind()
	if scheme.Scheme.Recognizes(gvk) {
		// Both checks run, so one pass reports a wrong type and a misspelt field together.
		obj, _, decErr := c.decoder.Decode(j, nil, nil)
		if decErr != nil {
			errs = append(errs, fmt.Errorf("strict decode: %w", decErr))
		}
		if _, err := c.tc.ObjectToTyped(&u); err != nil {
			errs = append(errs, fmt.Errorf("schema: %w", err))
		}
		if c.policy && decErr == nil {
			errs = append(errs, checkPolicy(obj)...)
		}
		return id, errs
	}
	check, ok := crds[gvk.GroupVersion().String()+", Kind="+gvk.Kind]
	if !ok {
		return id, append(errs, fmt.Errorf("kind %s is neither built in nor in the CRD allow-list (crd.go)", gvk))
	}
	if err := check(j); err != nil {
		errs = append(errs, fmt.Errorf("allow-list: %w", err))
	}
	return id, errs
}
