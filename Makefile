# A thin wrapper over CMake for the README's commands.  The build itself is CMakeLists.txt.
BUILD ?= build
SAN_BUILD ?= build-sanitize
TSAN_BUILD ?= build-tsan
FUZZ_BUILD ?= build-fuzz
FUZZ_RUNS ?= 20000
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?=

.PHONY: all demo test test-sanitize test-tsan test-valgrind fuzz bench clean

all:
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo $(CMAKE_FLAGS)
	cmake --build $(BUILD) -j $(JOBS)

demo: all
	./$(BUILD)/examples/demo

test: all
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

test-sanitize:
	cmake -S . -B $(SAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DMPROC_SANITIZE=ON $(CMAKE_FLAGS)
	cmake --build $(SAN_BUILD) -j $(JOBS)
	cd $(SAN_BUILD) && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 MTEST_TIMEOUT_SCALE=3 \
	  ctest --output-on-failure -j $(JOBS)

# ThreadSanitizer over the tests whose caller runs several threads (ctest label tsan: pools, with their
# manager thread, futures, callbacks, as_completed, the thread backend).  die_after_fork=0: pools fork their
# template from a process that may already have threads (the harness checks the children); the
# suppressions are reports TSan cannot judge, one entry per reason (tests/tsan.supp).
test-tsan:
	cmake -S . -B $(TSAN_BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMPROC_TSAN=ON -DMPROC_BUILD_BENCH=OFF $(CMAKE_FLAGS)
	cmake --build $(TSAN_BUILD) -j $(JOBS)
	cd $(TSAN_BUILD) && TSAN_OPTIONS="die_after_fork=0 halt_on_error=1 second_deadlock_stack=1 suppressions=$(CURDIR)/tests/tsan.supp" \
	  MTEST_TIMEOUT_SCALE=3 ctest --output-on-failure -L tsan -j $(JOBS)

# Every fuzz target under libFuzzer (clang) for FUZZ_RUNS inputs each (fuzz/run.sh; FUZZ_TARGETS for some).
fuzz:
	CC=clang cmake -S . -B $(FUZZ_BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMPROC_FUZZ=ON -DMPROC_BUILD_TESTS=OFF \
	  -DMPROC_BUILD_EXAMPLES=OFF -DMPROC_BUILD_BENCH=OFF $(CMAKE_FLAGS)
	cmake --build $(FUZZ_BUILD) -j $(JOBS)
	sh fuzz/run.sh $(FUZZ_BUILD) $(FUZZ_RUNS) $(FUZZ_TARGETS)

# valgrind's memcheck over a representative subset of the suite, every process traced: 0 errors, 0 definite
# leaks (the settings and what is left out, and why: scripts/valgrind-subset.sh).
test-valgrind: all
	sh scripts/valgrind-subset.sh $(BUILD)

clean:
	rm -rf $(BUILD) $(SAN_BUILD) $(TSAN_BUILD) $(FUZZ_BUILD)
