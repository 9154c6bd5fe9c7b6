package gpu

import (
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/server"
)

func TestParseRequest(t *testing.T) {
	for _, tc := range []struct {
		in        []string
		canonical string
		choices   []Choice
	}{
		{[]string{"any"}, "any", []Choice{{Any: true, Count: 1}}},
		{[]string{"ANY:2"}, "any:2", []Choice{{Any: true, Count: 2}}},
		{[]string{"all"}, "all", []Choice{{All: true}}},
		{[]string{" All "}, "all", []Choice{{All: true}}},
		{[]string{"H100"}, "H100", []Choice{{Model: "H100", Count: 1}}},
		{[]string{"h100"}, "H100", []Choice{{Model: "H100", Count: 1}}},
		{[]string{"H100:1"}, "H100", []Choice{{Model: "H100", Count: 1}}},
		{[]string{"H100:2"}, "H100:2", []Choice{{Model: "H100", Count: 2}}},
		{[]string{"H100!"}, "H100", []Choice{{Model: "H100", Count: 1, Exact: true}}},
		{[]string{"H100!:8"}, "H100:8", []Choice{{Model: "H100", Count: 8, Exact: true}}},
		{[]string{"H100:8!"}, "H100:8", []Choice{{Model: "H100", Count: 8, Exact: true}}},
		{[]string{"A100-80GB"}, "A100-80GB", []Choice{{Model: "A100", MemoryGiB: 80, Count: 1}}},
		{[]string{"a100-40gb:4"}, "A100-40GB:4", []Choice{{Model: "A100", MemoryGiB: 40, Count: 4}}},
		{[]string{"RTX pro_6000"}, "RTX-PRO-6000", []Choice{{Model: "RTX-PRO-6000", Count: 1}}},
		{[]string{"L40S"}, "L40S", []Choice{{Model: "L40S", Count: 1}}},
		{[]string{"H100", "A100"}, "H100,A100", []Choice{{Model: "H100", Count: 1}, {Model: "A100", Count: 1}}},
		{[]string{"H100:2, a100-80gb:2", "any"}, "H100:2,A100-80GB:2,any", []Choice{
			{Model: "H100", Count: 2}, {Model: "A100", MemoryGiB: 80, Count: 2}, {Any: true, Count: 1}}},
	} {
		t.Run(strings.Join(tc.in, "|"), func(t *testing.T) {
			r, err := ParseRequest(tc.in...)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(r.Choices, tc.choices) {
				t.Errorf("choices:\n got %+v\nwant %+v", r.Choices, tc.choices)
			}
			if got := r.String(); got != tc.canonical {
				t.Errorf("String() = %q, want %q", got, tc.canonical)
			}
			// The canonical form parses to the same request (Exact aside).
			again, err := ParseRequest(r.String())
			if err != nil || again.String() != r.String() {
				t.Errorf("canonical form %q does not round-trip: %v, %v", r.String(), again, err)
			}
		})
	}
}

func TestParseRequestInvalid(t *testing.T) {
	for _, tc := range []struct {
		in   []string
		says string
	}{
		{nil, "empty"},
		{[]string{""}, "empty choice"},
		{[]string{"  "}, "empty choice"},
		{[]string{"H100:0"}, "at least 1"},
		{[]string{"H100:-1"}, "not a number"},
		{[]string{"H100:x"}, "not a number"},
		{[]string{"H100:"}, "not a number"},
		{[]string{"H100:2:3"}, "not a number"},
		{[]string{"H100:99999999999999999999"}, "out of range"},
		{[]string{":2"}, "missing GPU type"},
		{[]string{"!"}, "missing GPU type"},
		{[]string{"all:2"}, "no count"},
		{[]string{"all!"}, "no count"},
		{[]string{"any!"}, "any!"},
		{[]string{"all", "H100"}, "several choices"},
		{[]string{"H100,,A100"}, "empty choice"},
		{[]string{"80GB"}, "needs a model"},
		{[]string{"B200+"}, "upgrades"},
		{[]string{"H100;reboot"}, "unexpected character"},
		{[]string{"H100/2"}, "unexpected character"},
	} {
		t.Run(strings.Join(tc.in, "|"), func(t *testing.T) {
			r, err := ParseRequest(tc.in...)
			if err == nil {
				t.Fatalf("no error; parsed %q", r)
			}
			if !errors.Is(err, ErrInvalidRequest) {
				t.Errorf("error %v is not ErrInvalidRequest", err)
			}
			if !strings.Contains(err.Error(), tc.says) {
				t.Errorf("error %q does not say %q", err, tc.says)
			}
		})
	}
}

func indexes(devs []Device) []int {
	var ix []int
	for _, d := range devs {
		ix = append(ix, d.Index)
	}
	return ix
}

func TestSelect(t *testing.T) {
	dgx := discover(t, dgxH100())
	mixed := discover(t, mixedHost(t))
	noGPUs, err := server.New(server.WithDriverVersion("550.54.15"))
	if err != nil {
		t.Fatal(err)
	}
	empty := discover(t, noGPUs)
	migHost := mixedHost(t)
	migHost.Devices[0].(*server.Device).MigMode = 1
	mig := discover(t, migHost)

	const mixedHas = `host has 1 × NVIDIA H100 80GB HBM3 (80 GiB), 1 × NVIDIA A100-SXM4-40GB (40 GiB), 1 × Tesla T4 (15 GiB)`
	for _, tc := range []struct {
		name string
		inv  Inventory
		req  []string
		want []int  // GPU indexes, when it succeeds
		err  string // the whole error, when it fails
	}{
		{"dgx one", dgx, []string{"H100"}, []int{0}, ""},
		{"dgx two", dgx, []string{"H100:2"}, []int{0, 1}, ""},
		{"dgx eight", dgx, []string{"h100:8"}, []int{0, 1, 2, 3, 4, 5, 6, 7}, ""},
		{"dgx nine", dgx, []string{"H100:9"}, nil, `GPU request "H100:9": host has 8 × NVIDIA H100 80GB HBM3 (80 GiB)`},
		{"dgx memory", dgx, []string{"H100-80GB:2"}, []int{0, 1}, ""},
		{"dgx wrong memory", dgx, []string{"H100-94GB"}, nil, `GPU request "H100-94GB": host has 8 × NVIDIA H100 80GB HBM3 (80 GiB)`},
		{"dgx no A100", dgx, []string{"A100"}, nil, `GPU request "A100": host has 8 × NVIDIA H100 80GB HBM3 (80 GiB)`},
		{"dgx all", dgx, []string{"all"}, []int{0, 1, 2, 3, 4, 5, 6, 7}, ""},
		{"dgx any", dgx, []string{"any"}, []int{0}, ""},
		{"dgx exact", dgx, []string{"H100!"}, []int{0}, ""},

		{"mixed A100", mixed, []string{"A100"}, []int{1}, ""},
		{"mixed A100-40GB", mixed, []string{"A100-40GB"}, []int{1}, ""},
		{"mixed A100-80GB is not a 40GB one", mixed, []string{"A100-80GB"}, nil, `GPU request "A100-80GB": ` + mixedHas},
		{"mixed never downgrades H100:2", mixed, []string{"H100:2"}, nil, `GPU request "H100:2": ` + mixedHas},
		{"mixed T4 sold as 16GB", mixed, []string{"T4-16GB"}, []int{2}, ""},
		{"mixed name words", mixed, []string{"tesla t4"}, []int{2}, ""},
		{"mixed A10 is not A100", mixed, []string{"A10"}, nil, `GPU request "A10": ` + mixedHas},
		{"mixed unknown model", mixed, []string{"B200"}, nil, `GPU request "B200": ` + mixedHas},
		{"mixed list falls back", mixed, []string{"H200", "A100"}, []int{1}, ""},
		{"mixed list preference beats index", mixed, []string{"T4", "H100"}, []int{2}, ""},
		{"mixed list first", mixed, []string{"H100", "A100"}, []int{0}, ""},
		{"mixed list none", mixed, []string{"H200,B200:2"}, nil, `GPU request "H200,B200:2": ` + mixedHas},
		{"mixed any:3", mixed, []string{"any:3"}, []int{0, 1, 2}, ""},
		{"mixed any:4", mixed, []string{"any:4"}, nil, `GPU request "any:4": ` + mixedHas},
		{"mixed all", mixed, []string{"all"}, []int{0, 1, 2}, ""},

		{"no GPUs any", empty, []string{"any"}, nil, `GPU request "any": host has no NVIDIA GPUs`},
		{"no GPUs all", empty, []string{"all"}, nil, `GPU request "all": host has no NVIDIA GPUs`},

		{"MIG GPU not selected", mig, []string{"H100"}, nil, `GPU request "H100": host has 1 × NVIDIA H100 80GB HBM3 (80 GiB, MIG enabled: not usable as a whole GPU), 1 × NVIDIA A100-SXM4-40GB (40 GiB), 1 × Tesla T4 (15 GiB)`},
		{"MIG all is the others", mig, []string{"all"}, []int{1, 2}, ""},
		{"MIG any:2", mig, []string{"any:2"}, []int{1, 2}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, err := ParseRequest(tc.req...)
			if err != nil {
				t.Fatal(err)
			}
			got, err := req.Select(tc.inv)
			if tc.err != "" {
				if err == nil {
					t.Fatalf("selected %v, want error %q", indexes(got), tc.err)
				}
				if err.Error() != tc.err {
					t.Errorf("error:\n got %q\nwant %q", err, tc.err)
				}
				if !errors.Is(err, ErrUnsatisfiable) {
					t.Errorf("error %v is not ErrUnsatisfiable", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(indexes(got), tc.want) {
				t.Errorf("selected %v, want %v", indexes(got), tc.want)
			}
			for _, d := range got {
				if !slices.Contains(tc.inv.Devices, d) {
					t.Errorf("selected %+v, which is not in the inventory", d)
				}
			}
		})
	}
}

func TestSelectZeroRequest(t *testing.T) {
	devs, err := (Request{}).Select(mixedInventory())
	if err != nil || devs != nil {
		t.Errorf("zero request selected %v, %v; want nothing", devs, err)
	}
	if s := (Request{}).String(); s != "" {
		t.Errorf("zero request String() = %q", s)
	}
}

func TestMatchesMemoryTolerance(t *testing.T) {
	// NVML's totals for the marketing sizes.
	for _, tc := range []struct {
		name string
		mib  uint64
		gb   int
		want bool
	}{
		{"NVIDIA A100-SXM4-80GB", 81559, 80, true},
		{"NVIDIA A100-SXM4-80GB", 81559, 40, false},
		{"NVIDIA A100-SXM4-40GB", 40536, 40, true},
		{"NVIDIA A100-SXM4-40GB", 40536, 80, false},
		{"NVIDIA L4", 23034, 24, true},
		{"NVIDIA L40S", 46068, 48, true},
		{"NVIDIA H100 NVL", 95830, 94, true},
		{"NVIDIA H100 NVL", 95830, 80, false},
		{"NVIDIA H200", 143771, 141, true},
	} {
		model := modelWords(tc.name)[1]
		c := Choice{Model: model, MemoryGiB: tc.gb, Count: 1}
		if got := c.Matches(Device{Name: tc.name, MemoryBytes: tc.mib * mib}); got != tc.want {
			t.Errorf("%s-%dGB matches %s with %d MiB: %v, want %v", model, tc.gb, tc.name, tc.mib, got, tc.want)
		}
	}
}
