# Thin wrapper around CMake: `make run` and `make test` are all a newcomer needs.
BUILD      ?= build
TESTBUILD  ?= build-test
ENV_DIR    ?= $(CURDIR)/$(BUILD)/sandbox-env
PORT       ?= 8080
JOBS       ?= $(shell nproc)
# Python requirements of the sandbox environment beyond Debian's packages; an
# operator adds a file of their own: make env EXTRA_REQUIREMENTS=my-reqs.txt
REQUIREMENTS ?= sandbox/requirements.txt $(EXTRA_REQUIREMENTS)
FUZZ_RUNS  ?= 20000

.PHONY: all deps build build-test env environment run test unit integration format check-format clean

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
	/usr/bin/python3 sandbox/build-env.py --packages sandbox/packages.txt \
	    $(foreach r,$(REQUIREMENTS),--requirements $(r)) $(if $(FORCE),--force) --dest $(ENV_DIR)

# A further sandbox environment (README, "Sandbox environments"), built in
# $(ENVIRONMENTS)/NAME from the Debian packages of sandbox/packages.txt plus
# FROM/packages.txt (the host's versions, so an environment can only add to
# them) and from FROM/requirements.txt in place of sandbox/requirements.txt
# (pip's pins are each environment's own). Both files are optional.
ENVIRONMENTS ?= $(CURDIR)/$(BUILD)/environments
environment: deps
	@[ -n "$(NAME)" ] && [ -d "$(FROM)" ] || { echo "usage: make environment NAME=next FROM=DIR" \
	    "(DIR holds packages.txt and requirements.txt, each optional)" >&2; exit 2; }
	@scripts/install-deps.sh $(wildcard $(FROM)/packages.txt)
	/usr/bin/python3 sandbox/build-env.py --packages sandbox/packages.txt \
	    $(addprefix --packages ,$(wildcard $(FROM)/packages.txt)) \
	    $(foreach r,$(or $(wildcard $(FROM)/requirements.txt),$(REQUIREMENTS)),--requirements $(r)) \
	    $(if $(FORCE),--force) --dest $(ENVIRONMENTS)/$(NAME)

run: build env
	$(BUILD)/codejaild --profile development --listen 127.0.0.1 --port $(PORT)

# Unit and engine tests (sanitizer build), then the sandbox's integration
# tests against both builds, the API tests against the daemon (pool on and
# off, and every allow and deny test again behind the LMS's prolog) and the
# daemon's own tests (faults injected: helpers killed and stopped, the daemon
# killed, resources exhausted; two sandbox environments, reloaded under
# load), each inside a network namespace of its own with only
# loopback up; then each libFuzzer target for a bounded number of runs.
test: build build-test env check-format
	$(MAKE) environment NAME=next FROM=tests/environments/next
	unshare --net sh -c 'ip link set lo up && cd $(TESTBUILD) && ctest --output-on-failure'
	tests/run-integration.sh $(CURDIR)/$(TESTBUILD) $(CURDIR)/$(BUILD)
	CODEJAIL_NEXT_ENV_DIR=$(ENVIRONMENTS)/next tests/run-api-tests.sh $(CURDIR)/$(BUILD)
	tests/run-api-tests.sh --pool-off $(CURDIR)/$(BUILD)
	tests/run-api-tests.sh --lms-prolog $(CURDIR)/$(BUILD) -- -k 'deny or allow'
	CODEJAIL_ENV_DIR=$(ENV_DIR) CODEJAIL_NEXT_ENV_DIR=$(ENVIRONMENTS)/next \
	    tests/run-fault-tests.sh $(CURDIR)/$(BUILD)
	tests/run-fuzz.sh -runs=$(FUZZ_RUNS)

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

check-format:
	clang-format --dry-run --Werror $$(git ls-files '*.c' '*.h')

clean:
	rm -rf $(BUILD) $(TESTBUILD)

# The benchmark: latency, throughput and memory of codejaild against the bare
# interpreter, and what a second sandbox environment costs, in a network
# namespace of its own; table and chart in
# $(BUILD)/bench/. It reports; it never fails on a slow figure.
bench: build env
	$(MAKE) environment NAME=next FROM=tests/environments/next
	unshare --net sh -c 'ip link set lo up && /usr/bin/python3 tests/bench/codejail_bench.py --build $(BUILD) --out $(BUILD)/bench --env $(ENV_DIR) --next-env $(ENVIRONMENTS)/next'

# The soak: SOAK_S seconds (default 600) of mixed load with sandbox helpers
# killed at random, sampled every 5 s; fails on growth that does not come
# back after the load, on a 5xx no injected fault explains, on a request
# that waited past its limit. Table and chart in $(BUILD)/soak/.
SOAK_S ?= 600
soak: build env
	unshare --net --mount sh -c 'ip link set lo up && SOAK_S=$(SOAK_S) /usr/bin/python3 tests/soak/codejail_soak.py --build $(BUILD) --out $(BUILD)/soak'

# ---- Deployment: container image, Podman, Helm chart, kind ------------------
IMAGE           ?= codejail:latest
BASE_IMAGE      ?= localhost/codejail-base:bookworm
KIND_NODE_IMAGE ?= kindest/node:v1.33.1

.PHONY: bench soak base-image image podman-run check-deploy container-test kind-test

# A Debian 12 base image made with debootstrap from this machine's apt mirror
# (root, once); `make image` makes it itself when it is missing. Where a
# registry is reachable: make image BASE_IMAGE=docker.io/library/debian:bookworm-slim
base-image:
	deploy/podman/make-base-image.sh $(BASE_IMAGE)

image:
	BASE_IMAGE=$(BASE_IMAGE) deploy/podman/build-image.sh $(IMAGE)

# The image under Podman (rootless when run as a user) on 127.0.0.1:$(PORT),
# execution on, locked down (flags: deploy/podman/run.sh). Ctrl-C stops it.
podman-run:
	deploy/podman/run.sh --port $(PORT) $(IMAGE)

# Helm lint + template (default and deploy/k8s/ci/*.yaml values), rendered
# objects validated against the Kubernetes schemas, seccomp/AppArmor profiles.
check-deploy:
	scripts/check-deploy.sh

# CI: the image built and run by an unprivileged user under rootless Podman,
# and api_tests/ against it (root: sets up the user and this host's quirks).
container-test:
	scripts/ci-podman-setup.sh setup
	deploy/podman/make-base-image.sh --tar-only $(BASE_IMAGE)
	scripts/ci-podman-setup.sh run sh -c 'BASE_IMAGE=$(BASE_IMAGE) deploy/podman/build-image.sh codejail:ci && tests/run-container-api-tests.sh codejail:ci'

# The chart on a kind cluster, api_tests/ through a port-forward (needs kind
# and Docker; .github/workflows/kind.yaml runs this).
kind-test: check-deploy
	BASE_IMAGE=$(BASE_IMAGE) deploy/podman/build-image.sh localhost/codejail:ci
	mkdir -p build/image && rm -f build/image/codejail-ci.tar
	podman save -o build/image/codejail-ci.tar localhost/codejail:ci
	KIND_NODE_IMAGE=$(KIND_NODE_IMAGE) deploy/kind/test.sh build/image/codejail-ci.tar

# ---- The sandbox on Debian 12's own kernel, in a virtual machine ----------
.PHONY: vm-test

# QEMU (TCG) boots the kernel linux-image-amd64 depends on, fetched with
# apt-get download and never installed, with AppArmor on, cgroup2 with memory
# and pids, Landlock ABI 2 and no network device; this checkout and the host's
# /usr are shared read-only. In it: codejail check, the integration suite of
# the testing build with the layer ablation, the leak test and api_tests/
# against the release build. Kernel and initramfs are cached in $(BUILD)/vm/
# (tests/vm/run.sh).
vm-test: build build-test env
	tests/vm/run.sh $(BUILD) $(TESTBUILD)
