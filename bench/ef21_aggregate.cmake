# ef21_aggregate_bench: ErrorFeedback::decode_and_aggregate (EF21 / EF21-W receiver side) for W
# workers' payloads (default 8 workers, n = 2^22, Top-k density 0.01 first) against the dense
# decode-then-add algorithm, timed in the same run.
add_executable(ef21_aggregate_bench ${CMAKE_CURRENT_LIST_DIR}/ef21_aggregate_bench.cc)
target_link_libraries(ef21_aggregate_bench PRIVATE terse_compress nlohmann_json::nlohmann_json
                      terse_flags)
target_compile_options(ef21_aggregate_bench PRIVATE -O3)
