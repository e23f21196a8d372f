# Moongate: `make test` runs every test; `make run` serves config.example.yaml.
GO ?= go

.PHONY: test vet fmt-check unit luatest fuzz bench run build browser-deps

test: fmt-check vet browser-deps unit luatest fuzz

# A short fuzz run of each target on top of its seed corpus (a few seconds
# each here); a crasher is kept under testdata/fuzz and stays a regression
# case. The budgets are counts of inputs, not durations: with a duration,
# Go 1.26's fuzzing coordinator can fail a clean run with "context
# deadline exceeded" as the time runs out (go.dev/issue/75804, fixed in 1.27).
FUZZ_READER ?= 200000x
FUZZ_CONFIG ?= 100000x
FUZZ_JSON   ?= 200000x
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzReader$$' -fuzztime $(FUZZ_READER) ./gateway/wsproto
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZ_CONFIG) ./gateway/config
	$(GO) test -run '^$$' -fuzz '^FuzzDecode$$' -fuzztime $(FUZZ_JSON) ./scripting/luaval

# The browser tests drive Debian's Chromium and inject axe-core (npm,
# test/browser/package.json, test-only); install them when missing and possible.
browser-deps:
	@bash .ci/ensure-chromium
	@bash .ci/ensure-browser-deps

# bin/moongate and bin/moongate-bench; `go install ./cmd/moongate` puts moongate in $(go env GOPATH)/bin instead.
build:
	$(GO) build ./...
	$(GO) build -o bin/ ./cmd/moongate ./cmd/moongate-bench

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

unit:
	$(GO) test -race -count=1 -timeout 15m ./...

# Benchmarks print their figures as ratios against a baseline measured in the same run.
bench:
	$(GO) test -run '^$$' -bench . -benchmem -count 1 ./...

# The Lua tests beside the shipped scripts (scripts/*_test.lua, docs/testing.md).
luatest:
	$(GO) run ./cmd/moongate test

run:
	$(GO) run ./cmd/moongate
