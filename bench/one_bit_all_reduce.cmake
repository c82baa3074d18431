# one_bit_all_reduce_bench: OneBitAllReduce against a dense f32 all_reduce, time and bytes per
# rank (run under mpiexec; docs/benchmarks.md).
add_executable(one_bit_all_reduce_bench ${CMAKE_CURRENT_LIST_DIR}/one_bit_all_reduce_bench.cc)
target_link_libraries(one_bit_all_reduce_bench PRIVATE terse_comm_algorithms
                      nlohmann_json::nlohmann_json terse_flags)
target_compile_options(one_bit_all_reduce_bench PRIVATE -O3)
