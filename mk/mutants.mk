# Mutation testing of the pure core (cargo-mutants, unit tests only): `make mutants`, or one folder
# with `make mutants MUTANTS_FILES='src/rules/**/*.rs'`. Not run by CI; takes minutes. Installs
# cargo-mutants on first use. Summary: mutants.out/summary.txt.
MUTANTS_FILES ?=

.PHONY: mutants
mutants:
	scripts/mutants.sh $(foreach f,$(MUTANTS_FILES),'$(f)')
