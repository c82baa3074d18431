# sparse_all_reduce_bench: SparseAllReduce (Ok-Topk) against SparseAllGather and a dense f32
# all_reduce, time and bytes per rank (run under mpiexec; docs/collectives.md).
add_executable(sparse_all_reduce_bench ${CMAKE_CURRENT_LIST_DIR}/sparse_all_reduce_bench.cc)
target_link_libraries(sparse_all_reduce_bench PRIVATE terse_comm_algorithms
                      nlohmann_json::nlohmann_json terse_flags)
target_compile_options(sparse_all_reduce_bench PRIVATE -O3)
