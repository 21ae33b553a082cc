package delivery

import (
	"reflect"
	"testing"
)

// The bound's rule: each target keeps routes up to the bound, in alert
// order; the first route past it marks the target behind from the alert
// before; targets already behind get none; notices always go.
func TestKeepWithin(t *testing.T) {
	a := func(target, alert uint) Route { return Route{Target: target, Partner: 7, Alert: alert} }
	notice := Route{Target: 1, Partner: 7, Notice: 3}
	tests := []struct {
		name     string
		routes   []Route
		due      map[uint]int
		behind   map[uint]bool
		kept     []Route
		fromLags []lag
	}{
		{"room for all", []Route{a(1, 10), a(1, 11), a(2, 10)}, map[uint]int{1: 1}, map[uint]bool{},
			[]Route{a(1, 10), a(1, 11), a(2, 10)}, nil},
		{"one target fills up", []Route{a(1, 10), a(2, 10), a(1, 11), a(1, 12), a(2, 11)}, map[uint]int{1: 2}, map[uint]bool{},
			[]Route{a(1, 10), a(2, 10), a(2, 11)}, []lag{{TargetID: 1, PartnerID: 7, AfterID: 10}}},
		{"full already", []Route{a(1, 10), a(1, 11)}, map[uint]int{1: 3}, map[uint]bool{},
			nil, []lag{{TargetID: 1, PartnerID: 7, AfterID: 9}}},
		{"behind already", []Route{a(1, 10), a(2, 10)}, map[uint]int{}, map[uint]bool{1: true},
			[]Route{a(2, 10)}, nil},
		{"notices go regardless", []Route{notice, a(1, 10)}, map[uint]int{1: 3}, map[uint]bool{},
			[]Route{notice}, []lag{{TargetID: 1, PartnerID: 7, AfterID: 9}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			kept, from := keepWithin(tt.routes, tt.due, tt.behind, 3)
			if len(kept) == 0 {
				kept = nil
			}
			if !reflect.DeepEqual(kept, tt.kept) || !reflect.DeepEqual(from, tt.fromLags) {
				t.Fatalf("kept %v, behind from %v; want %v, %v", kept, from, tt.kept, tt.fromLags)
			}
		})
	}
}
