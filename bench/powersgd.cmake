# powersgd_bench: PowerSGD's CPU passes on one rank by thread count, against a copy of the same
# matrices on as many threads.
add_executable(powersgd_bench ${CMAKE_CURRENT_LIST_DIR}/powersgd_bench.cc)
target_link_libraries(powersgd_bench PRIVATE terse_comm_algorithms nlohmann_json::nlohmann_json
                                              terse_flags)
target_compile_options(powersgd_bench PRIVATE -O3)
