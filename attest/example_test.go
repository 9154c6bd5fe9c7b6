package attest_test

import (
	"fmt"

	"github.com/stratabuild/strata/attest"
	"github.com/stratabuild/strata/layers"
)

// A provenance is checked by recomputing each recorded key from its
// recorded recipe: a recipe changed after the build no longer gives its key.
func ExampleProvenance_Check() {
	base := layers.Spec{Kind: layers.KindBase, Args: []string{"scratch"}}
	run := layers.Spec{Kind: layers.KindRun, Args: []string{"make"}, Shell: []string{"/bin/sh", "-c"}}
	k0, _ := layers.Compute("", base)
	k1, _ := layers.Compute(k0, run)
	p := &attest.Provenance{BuildDefinition: attest.BuildDefinition{
		BuildType: attest.BuildType,
		InternalParameters: attest.InternalParameters{RecipeVersion: layers.RecipeVersion, Chains: []attest.Chain{{Steps: []attest.Step{
			{Index: 0, Method: "Scratch", Key: k0, Spec: base},
			{Index: 1, Method: "RunCommands", Key: k1, Parent: k0, Spec: run},
		}}}},
	}}
	fmt.Println(p.Check() == nil)
	p.BuildDefinition.InternalParameters.Chains[0].Steps[1].Spec.Args = []string{"make install"}
	fmt.Println(p.Check() != nil)
	// Output:
	// true
	// true
}
