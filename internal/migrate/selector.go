package migrate

import (
	"reflect"
	"slices"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ironlb/ironlb/config/v1alpha1"
)

// MetalLB takes lists of label selectors where ironlb takes one selector;
// an object matches a list when it matches any selector of it.

// toSelector converts one label selector.
func toSelector(s metav1.LabelSelector) *v1alpha1.Selector {
	out := &v1alpha1.Selector{}
	if len(s.MatchLabels) > 0 {
		out.MatchLabels = make(map[string]v1alpha1.LabelValue, len(s.MatchLabels))
		for k, v := range s.MatchLabels {
			out.MatchLabels[k] = v1alpha1.LabelValue(v)
		}
	}
	for _, e := range s.MatchExpressions {
		r := v1alpha1.SelectorRequirement{Key: e.Key, Operator: string(e.Operator)}
		for _, v := range e.Values {
			r.Values = append(r.Values, v1alpha1.LabelValue(v))
		}
		out.MatchExpressions = append(out.MatchExpressions, r)
	}
	return out
}

// mergeSelectors turns a list of selectors into one selector that selects
// exactly what the list selects, when there is one:
//   - an empty list is no selector (nil);
//   - a list holding an empty selector selects everything;
//   - a list of one selector (after removing repeats) is that selector;
//   - selectors that each require one key to have one of some values
//     ({matchLabels: {k: a}}, {matchExpressions: [{key: k, operator: In,
//     values: [b, c]}]}) become one In requirement with all the values.
//
// Otherwise ok is false.
func mergeSelectors(list []metav1.LabelSelector) (sel *v1alpha1.Selector, ok bool) {
	var uniq []metav1.LabelSelector
	for _, s := range list {
		if len(s.MatchLabels) == 0 && len(s.MatchExpressions) == 0 {
			return &v1alpha1.Selector{}, true
		}
		if !slices.ContainsFunc(uniq, func(u metav1.LabelSelector) bool { return reflect.DeepEqual(u, s) }) {
			uniq = append(uniq, s)
		}
	}
	switch len(uniq) {
	case 0:
		return nil, true
	case 1:
		return toSelector(uniq[0]), true
	}
	key := ""
	var values []v1alpha1.LabelValue
	for _, s := range uniq {
		k, vs, ok := oneKeyIn(s)
		if !ok || (key != "" && k != key) {
			return nil, false
		}
		key = k
		for _, v := range vs {
			if !slices.Contains(values, v1alpha1.LabelValue(v)) {
				values = append(values, v1alpha1.LabelValue(v))
			}
		}
	}
	return &v1alpha1.Selector{MatchExpressions: []v1alpha1.SelectorRequirement{{Key: key, Operator: "In", Values: values}}}, true
}

// oneKeyIn tells whether a selector requires exactly one label key to have
// one of some values, and which.
func oneKeyIn(s metav1.LabelSelector) (key string, values []string, ok bool) {
	switch {
	case len(s.MatchLabels) == 1 && len(s.MatchExpressions) == 0:
		for k, v := range s.MatchLabels {
			return k, []string{v}, true
		}
	case len(s.MatchLabels) == 0 && len(s.MatchExpressions) == 1:
		e := s.MatchExpressions[0]
		if e.Operator == metav1.LabelSelectorOpIn && len(e.Values) > 0 {
			return e.Key, e.Values, true
		}
	}
	return "", nil, false
}

// selectorChoices returns the selectors that objects written for a list
// must carry: one when the list merges, otherwise one per selector, so
// that one ironlb object per selector selects together what the list did.
func selectorChoices(list []metav1.LabelSelector) (choices []*v1alpha1.Selector, merged bool) {
	if sel, ok := mergeSelectors(list); ok {
		return []*v1alpha1.Selector{sel}, true
	}
	for i, s := range list {
		if !slices.ContainsFunc(list[:i], func(u metav1.LabelSelector) bool { return reflect.DeepEqual(u, s) }) {
			choices = append(choices, toSelector(s))
		}
	}
	return choices, false
}
