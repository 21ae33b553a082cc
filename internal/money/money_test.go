package money

import "testing"

func TestParse(t *testing.T) {
	tests := []struct {
		in   string
		want Amount
		ok   bool
	}{
		{"0", 0, true},
		{"12", 1200, true},
		{"12.5", 1250, true},
		{"12.05", 1205, true},
		{"-0.01", -1, true},
		{"007", 700, true},
		{"1000000000000", MaxInput, true},
		{"-1000000000000.00", -MaxInput, true},
		{"1000000000000.01", 0, false},
		{"99999999999999", 0, false},
		{"12.345", 0, false},
		{"12.", 0, false},
		{".5", 0, false},
		{"", 0, false},
		{"-", 0, false},
		{"+1", 0, false},
		{"1e3", 0, false},
		{" 1", 0, false},
		{"1 ", 0, false},
		{"NaN", 0, false},
		{"1,5", 0, false},
		{"--1", 0, false},
		{"1.-5", 0, false},
		{"١٢", 0, false}, // non-ASCII digits
	}
	for _, tt := range tests {
		got, err := Parse(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("Parse(%q) = %d, %v; want %d, ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

func TestString(t *testing.T) {
	tests := []struct {
		in   Amount
		want string
	}{
		{0, "0.00"},
		{1, "0.01"},
		{-1, "-0.01"},
		{125000, "1250.00"},
		{-5000, "-50.00"},
		{1205, "12.05"},
		{MaxInput, "1000000000000.00"},
	}
	for _, tt := range tests {
		if got := tt.in.String(); got != tt.want {
			t.Errorf("Amount(%d).String() = %q, want %q", tt.in, got, tt.want)
		}
		if back, err := Parse(tt.want); err != nil || back != tt.in {
			t.Errorf("Parse(%q) = %d, %v; want %d", tt.want, back, err, tt.in)
		}
	}
}

func TestFromUnits(t *testing.T) {
	if a, err := FromUnits(-12); err != nil || a != -1200 {
		t.Fatalf("FromUnits(-12) = %d, %v", a, err)
	}
	if _, err := FromUnits(1_000_000_000_001); err == nil {
		t.Fatal("FromUnits accepted more than the maximum")
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"1", "-0.5", "12.34", "1e3", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		a, err := Parse(s)
		if err != nil {
			return
		}
		if a.Abs() > MaxInput {
			t.Fatalf("Parse(%q) = %d beyond the maximum", s, a)
		}
		if back, err := Parse(a.String()); err != nil || back != a {
			t.Fatalf("round trip of %q: %q gives %d, %v", s, a.String(), back, err)
		}
	})
}
