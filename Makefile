# Thin wrapper around CMake: `make run` and `make test` are all a newcomer needs.
BUILD      ?= build
TESTBUILD  ?= build-test
ENV_DIR    ?= $(CURDIR)/$(BUILD)/sandbox-env
PORT       ?= 8080
JOBS       ?= $(shell nproc)

.PHONY: all deps build build-test env run test unit integration format check-format clean

all: build

deps:
	@scripts/install-deps.sh scripts/debian-packages.txt sandbox/packages.txt

$(BUILD)/Makefile: CMakeLists.txt | deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCODEJAIL_ENV_DIR=$(ENV_DIR)

$(TESTBUILD)/Makefile: CMakeLists.txt | deps
	cmake -S . -B $(TESTBUILD) -DCMAKE_BUILD_TYPE=Debug -DCODEJAIL_TESTING=ON \
	      -DCODEJAIL_SANITIZE=ON -DCODEJAIL_ENV_DIR=$(ENV_DIR)

build: $(BUILD)/Makefile
	cmake --build $(BUILD) -j $(JOBS)

build-test: $(TESTBUILD)/Makefile
	cmake --build $(TESTBUILD) -j $(JOBS)

env: deps
	/usr/bin/python3 sandbox/build-env.py --packages sandbox/packages.txt --dest $(ENV_DIR)

run: build env
	$(BUILD)/codejaild --profile development --listen 127.0.0.1 --port $(PORT)

# Unit tests (sanitizer build), then the sandbox's integration tests against
# both builds, inside a network namespace of their own.
test: build build-test env check-format
	cd $(TESTBUILD) && ctest --output-on-failure
	tests/run-integration.sh $(CURDIR)/$(TESTBUILD) $(CURDIR)/$(BUILD)

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

check-format:
	clang-format --dry-run --Werror $$(git ls-files '*.c' '*.h')

clean:
	rm -rf $(BUILD) $(TESTBUILD)
